export * from './proto/load';
export type * from './proto/types';
