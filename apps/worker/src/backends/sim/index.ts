export {
  DEVICE_PROFILES,
  UnknownDeviceProfileError,
  UnsupportedDtypeError,
  deviceProfile,
  linkModelOf,
  peakFlops,
  type DeviceProfile,
  type Dtype,
} from './devices';
export {
  CostModel,
  DEEPSEEK_V3_LAYER,
  computeScaleForRatio,
  estimateStep,
  resolveModeledModel,
  type CostModelOptions,
  type ModeledAttention,
  type ModeledModel,
  type ModeledModelInput,
  type OpCost,
  type StepEstimate,
  type StepEstimateOptions,
} from './modeled-model';
export { SimOptionsError, parseSimOptions, simOptionsSchema, type SimOptions, type SimOptionsInput } from './sim-options';
export {
  SimBackend,
  SimShapeError,
  SimStateError,
  type SimBackendOptions,
  type SimOpKind,
  type SimOpRecord,
} from './sim-backend';
export { mixSeed, seededExpertIds } from './seeded-routing';
