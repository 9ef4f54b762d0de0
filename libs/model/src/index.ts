/** @moe/model: tensors, config, the MoE model's pieces with their backward passes, AdamW, synthetic data, the reference trainer. */
export { ShapeError } from './shape-error';
export { zeros, tensorFrom, cloneTensor, sizeOf, matrixShape, expectShape, type Tensor } from './tensor';
export { matmul, matmulTransA, matmulTransB, addInPlace } from './ops';
export { Rng, deriveSeed } from './rng';
export {
  parseModelConfig,
  parseTrainConfig,
  parseOptimizerConfig,
  TINY_MODEL,
  TINY_TRAIN,
  TINY_OPTIMIZER,
  type ScoreFunction,
  type BalancingKind,
  type ModelConfig,
  type OptimizerConfig,
  type TrainConfig,
} from './config';
export { ConfigError, type ConfigProblem } from './config-error';
export { checkMemory, estimateMemory, MAX_TENSOR_ELEMENTS, type MemoryEstimate } from './memory';
export {
  initParams,
  denseParams,
  expertParams,
  routedExpertParams,
  namedParams,
  cloneParams,
  zerosLikeParams,
  type ExpertParams,
  type LayerParams,
  type ModelParams,
  type NamedParam,
} from './params';
export {
  EXPERT_WEIGHTS,
  EMBEDDING,
  FINAL_NORM,
  HEAD,
  layerParamName,
  sharedParamName,
  expertParamName,
  parseExpertParamName,
  isRouterBias,
  expertShapes,
  expertFrom,
  denseFrom,
  denseShapes,
  type DenseModelParams,
  type ExpertWeight,
} from './param-names';
export { checksumTensors } from './checksum';
export { rmsNorm, rmsNormBackward, type RmsNormCache } from './norm';
export { allowedExperts, groupScoreWidth } from './group-limit';
export { route, routeBackward, type Route, type RouteCache, type RouteOptions } from './router';
export { expertForward, expertBackward, type ExpertCache } from './expert';
export { combine, combineBackward } from './combine';
export { moeInputGrad } from './moe-input-grad';
export { groupSlotsByExpert, gatherRows, scatterRows } from './rows';
export { embed, embedBackward } from './embedding';
export { headForward, headBackward } from './head';
export { crossEntropy } from './loss';
export { AdamW, type AdamWState } from './optimizer';
export { updateRouterBias, sequenceAuxLoss } from './balancing';
export type { Batch } from './batch';
export {
  forwardBackward,
  sharedExpertsForward,
  sharedExpertsBackward,
  residualAdd,
  type ForwardBackwardResult,
  type ReplicaMirror,
  type RoundRows,
  type StepMirror,
  type WireRounding,
} from './model';
export { trainReference, applyUpdate, optimizerOrder, type ReferenceResult } from './reference';
export { MarkovChain, type MarkovChainOptions } from './data';
export { wholeBatch, checkSplit, type BatchSplit, type TokenRange } from './batch-split';
export { ShardCompute } from './shard/compute';
export type {
  ExpertRows,
  MicroBatch,
  NamedOptimizerState,
  ParamsSnapshot,
  ReplicaChecksum,
  RouteOutput,
  RoutedForm,
  RoutedInputGrads,
  RoutedRows,
  ShardParams,
  StepBatch,
  UpdateResult,
} from './shard/types';
export { replicaGradientLength } from './shard/replica-grads';
export {
  DEFAULT_LOSS_TOLERANCE,
  DEFAULT_PARAM_TOLERANCE,
  parityTolerances,
  tolerancesForCodecs,
  compareLosses,
  compareParams,
  checkParity,
  formatParity,
  type LossComparison,
  type ParamComparison,
  type ParityReport,
  type ParityTolerances,
} from './parity/compare';
export { assembleParams, type ReturnedExpert, type ReturnedParams } from './parity/assemble';
export { ParityError } from './parity/parity-error';
export { encodeCheckpoint, decodeCheckpoint, CheckpointError, type Checkpoint, type OptimizerSnapshot } from './checkpoint/format';
