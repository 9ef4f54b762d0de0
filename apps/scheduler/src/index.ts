// The scheduler's public face: what tests, benches and other tools import.
export * from './errors';
export { planExperts, parsePlacement, expertsPerRank, PLACEMENT_RULES, type Placement } from '@moe/placement';
export { splitSequences, sliceSequences, type SequenceRange } from '@moe/placement';
export { SchedulerService, describeWorkers, type RegisteredWorker, type SchedulerServiceOptions } from './control/rendezvous';
export { WorkerHandle } from './control/worker-client';
export { WorkerProcess, type WorkerProcessOptions } from './control/worker-process';
export { LocalCluster, type Cluster, type LocalClusterOptions, type SchedulerSettings } from './control/local-cluster';
export { ExternalCluster } from './control/external-cluster';
export { RunGuard } from './control/run-guard';
export {
  StepDriver,
  loadShardRequests,
  runStepRequests,
  gatherStep,
  assertSameChecksum,
  allRanks,
  type StepMetrics,
  type ShardPlan,
  type StepDriverOptions,
} from './run/step-driver';
export { assembleParams } from './run/parity';
export {
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
} from '@moe/model';
export { loadRunConfig, resolveRunConfig, type RunConfig, type RunConfigOverrides } from './run/run-config';
export { runTraining, type TrainingOptions, type TrainingResult, type RunInfo } from './run/train-run';
export { REPO_ROOT, WORKER_MAIN } from './paths';
export { saveCheckpoint, loadCheckpoint, gatherOptimizerState, optimizerStateForRank, CHECKPOINT_FILE, type Checkpoint, type OptimizerSnapshot } from './run/checkpoint';
