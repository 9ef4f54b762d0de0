// Pipeline-parallel schedules (1F1B, ZB1P, DualPipe, DualPipeV) as plans of chunk units per rank,
// their memory factors, and their expansion into op lists with the expert all-to-alls inside.
export * from './plan';
export * from './registry';
export * from './memory';
export { oneFOneB } from './one-f-one-b';
export { zb1p } from './zb1p';
export { dualPipe } from './dualpipe';
export { dualPipeV } from './dualpipev';
export * from './expand';
