export * from './ops';
export * from './build';
