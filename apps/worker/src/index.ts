// The Backend interface and everything it takes and returns, and the backend module API: the one
// place a custom backend imports its types from (`import type { Backend, BackendFactory } from '@moe/worker'`).
export type * from './backend';
export {
  BackendModuleError,
  checkBackend,
  loadBackendModule,
  REQUIRED_BACKEND_METHODS,
  type BackendFactory,
  type BackendModule,
  type BackendModuleContext,
} from './backends/load-backend-module';
export { CpuBackend } from './backends/cpu-backend';
export { ShardCompute } from '@moe/model';
export { BUILTIN_BACKENDS, createBackend, loadBackend, UnknownBackendError } from './backends/create-backend';
export { WorkerNode, type WorkerNodeOptions } from './worker-node';
export { buildSchedule, chunkTokenRange } from '@moe/schedule';
export { formatSchedule, ScheduleError, type Op, type OpKind, type ScheduleSpec, type Stream } from '@moe/schedule';
export { StepExecutor, StepOpError, type StepOutcome, type ExecuteSettings } from './schedule/executor';
export { FAULT_ENV, FAULT_NAMES, PlantedFault, UnknownFaultError, faultFromEnv, type FaultName } from './schedule/faults';
export type { OpRecordData } from '@moe/comm';
export { FailedPreconditionError, InvalidRequestError } from './errors';
