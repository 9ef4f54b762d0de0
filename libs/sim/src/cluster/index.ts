// The discrete-event cluster simulator: op lists on a virtual clock, pipeline schedules at scale,
// presets and cost estimates.
export * from './engine';
export * from './traffic';
export * from './config';
export * from './op-costs';
export * from './unit-tasks';
export * from './simulate-cluster';
export * from './presets';
export * from './cost-estimate';
export * from './simulate-step';
export * from './host-costs';
