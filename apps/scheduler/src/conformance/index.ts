// The conformance kit: `runConformance` (a library call), `registerConformanceCommand` (`moe conformance`).
export {
  runConformance,
  formatConformance,
  formatCheck,
  CheckFailure,
  CheckSkipped,
  CHECKS,
  type CheckId,
  type CheckResult,
  type CheckStatus,
  type ConformanceOptions,
  type ConformanceReport,
} from './run';
export { CHECK_TABLE, type Check } from './checks';
export { registerConformanceCommand, conformanceCommand } from '../commands/conformance';
export { KIT_MODEL, KIT_MODEL_AUX, KIT_TRAIN, ReferenceStepper, denseChecksum } from './fixture';
