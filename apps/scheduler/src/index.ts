// The scheduler's public face: what tests, benches and other tools import.
export * from './errors';
export { planExperts, parsePlacement, expertsPerRank, PLACEMENT_RULES, type Placement } from './planner';
export { splitSequences, sliceSequences, type SequenceRange } from './batch-split';
export { SchedulerService, describeWorkers, type RegisteredWorker, type SchedulerServiceOptions } from './rendezvous';
export { WorkerHandle } from './worker-client';
export { WorkerProcess, type WorkerProcessOptions } from './worker-process';
export { LocalCluster, type Cluster, type LocalClusterOptions, type SchedulerSettings } from './cluster';
export { ExternalCluster } from './external-cluster';
export { RunGuard } from './run-guard';
export {
  StepDriver,
  loadShardRequests,
  runStepRequests,
  gatherStep,
  assertSameChecksum,
  stepOptionsMsg,
  DEFAULT_STEP_SETTINGS,
  SCHEDULES,
  DISPATCH_CODECS,
  COMBINE_CODECS,
  type StepSettings,
  type StepMetrics,
  type ShardPlan,
  type StepDriverOptions,
  type ScheduleName,
  type DispatchCodecName,
  type CombineCodecName,
} from './step-driver';
export {
  assembleParams,
  checkParity,
  compareLosses,
  compareParams,
  expertParamName,
  formatParity,
  namedParams,
  DEFAULT_LOSS_TOLERANCE,
  DEFAULT_PARAM_TOLERANCE,
  type LossComparison,
  type ParamComparison,
  type ParityReport,
  type ParityTolerances,
} from './parity';
export { loadRunConfig, resolveRunConfig, type RunConfig, type RunConfigOverrides } from './run-config';
export { runTraining, type TrainingOptions, type TrainingResult, type RunInfo } from './train-run';
export { REPO_ROOT, WORKER_MAIN } from './paths';
export { saveCheckpoint, loadCheckpoint, gatherOptimizerState, optimizerStateForRank, CHECKPOINT_FILE, type Checkpoint, type OptimizerSnapshot } from './checkpoint';
