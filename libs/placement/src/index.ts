// Where experts live and which sequences each rank gets: pure functions of counts, no I/O.
export * from './errors';
export * from './placement';
export * from './expert-placement';
export * from './batch-split';
export * from './eplb';
export * from './plan-report';
export * from './rebalance';
