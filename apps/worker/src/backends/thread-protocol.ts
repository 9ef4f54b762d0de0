import type { CpuCompute } from './cpu-compute';

export type ComputeMethod = {
  [K in keyof CpuCompute]: CpuCompute[K] extends (...args: never[]) => unknown ? K : never;
}[keyof CpuCompute];

export interface ThreadRequest {
  id: number;
  method: ComputeMethod;
  args: unknown[];
}

export type ThreadResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
