// The `sim` backend: device timing from @moe/sim, real payload sizes on the real transport.
export { SimOptionsError, parseSimOptions, simOptionsSchema, type SimOptions, type SimOptionsInput } from './sim-options';
export { SimBackend, type SimBackendOptions } from './sim-backend';
export { SimShapeError, SimStateError, type SimOpKind, type SimOpRecord } from './sim-records';
