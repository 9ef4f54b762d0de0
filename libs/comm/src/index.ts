export * from './proto/load';
export type * from './proto/types';
export * from './proto/tensors';
export * from './proto/config-msg';
export * from './link/index';
