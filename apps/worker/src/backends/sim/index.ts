// The `sim` backend: device timing from @moe/sim, real payload sizes on the real transport.
export { SimOptionsError, parseSimOptions, simOptionsSchema, type SimOptions, type SimOptionsInput } from './sim-options';
export {
  SimBackend,
  SimShapeError,
  SimStateError,
  type SimBackendOptions,
  type SimOpKind,
  type SimOpRecord,
} from './sim-backend';
