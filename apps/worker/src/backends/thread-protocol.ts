import type { ShardCompute } from '@moe/model';

export type ComputeMethod = {
  [K in keyof ShardCompute]: ShardCompute[K] extends (...args: never[]) => unknown ? K : never;
}[keyof ShardCompute];

export interface ThreadRequest {
  id: number;
  method: ComputeMethod;
  args: unknown[];
}

export type ThreadResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
