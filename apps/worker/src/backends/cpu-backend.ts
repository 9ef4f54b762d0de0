import { Worker } from 'node:worker_threads';
import type { Backend, ExpertRows, MicroBatch, NamedOptimizerState, ParamsSnapshot, RoutedInputGrads, RoutedRows, RouteOutput, Shard, UpdateResult } from '../backend';
import { MAX_MICRO_BATCHES } from '@moe/schedule';
import { ShardCompute } from '@moe/model';
import type { ComputeMethod, ThreadRequest, ThreadResponse } from './thread-protocol';

export interface CpuBackendOptions {
  /**
   * Run the math on the calling thread instead of a worker thread. Only for unit tests that
   * drive several ranks in one process; a worker process always uses the thread.
   */
  inline?: boolean;
}

/** The compute thread died or refused a call; names the method. */
export class ComputeThreadError extends Error {
  override readonly name = 'ComputeThreadError';
}

/**
 * The `cpu` backend: the real math of `@moe/model`, run by a ShardCompute in a worker thread.
 * Calls are queued in order; arrays go across by structured clone (results are transferred).
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly deviceProfile = '';
  readonly maxMicroBatches = MAX_MICRO_BATCHES;
  /** ShardCompute sums replicated experts' gradients over the all-reduce (replica-grads.ts). */
  readonly sumsReplicaGradients = true;
  private readonly thread?: Worker;
  private readonly inline?: ShardCompute;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; method: string }>();
  private hidden = 0;
  private k = 0;
  private failure: Error | undefined;

  constructor(options: CpuBackendOptions = {}) {
    if (options.inline) {
      this.inline = new ShardCompute();
      return;
    }
    this.thread = new Worker(new URL('./cpu-thread-entry.mjs', import.meta.url));
    this.thread.on('message', (response: ThreadResponse) => {
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      this.pending.delete(response.id);
      if (response.ok) waiter.resolve(response.result);
      else waiter.reject(new ComputeThreadError(`cpu backend ${waiter.method}: ${response.error}`));
    });
    const fail = (error: Error) => {
      this.failure = error;
      for (const waiter of this.pending.values()) waiter.reject(new ComputeThreadError(`cpu backend ${waiter.method}: ${error.message}`));
      this.pending.clear();
    };
    this.thread.on('error', fail);
    this.thread.on('exit', (code) => fail(new Error(`compute thread exited with code ${code}`)));
  }

  private call<T>(method: ComputeMethod, ...args: unknown[]): Promise<T> {
    if (this.inline) {
      const compute = this.inline;
      return Promise.resolve().then(() => (compute[method] as (...a: unknown[]) => T).apply(compute, args));
    }
    if (this.failure) return Promise.reject(new ComputeThreadError(`cpu backend ${method}: ${this.failure.message}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
      this.thread!.postMessage({ id, method, args } satisfies ThreadRequest);
    });
  }

  async load(shard: Shard): Promise<string> {
    const checksum = await this.call<string>('load', shard);
    this.hidden = await this.call<number>('hiddenSize');
    this.k = await this.call<number>('topK');
    return checksum;
  }
  hiddenSize(): number {
    return this.hidden;
  }
  topK(): number {
    return this.k;
  }
  beginStep(batch: MicroBatch): Promise<void> {
    return this.call('beginStep', batch);
  }
  route(layer: number, microBatch: number): Promise<RouteOutput> {
    return this.call('route', layer, microBatch);
  }
  sharedExperts(layer: number, microBatch: number): Promise<void> {
    return this.call('sharedExperts', layer, microBatch);
  }
  experts(layer: number, chunk: number, rows: ExpertRows[], microBatch: number): Promise<Float32Array[]> {
    return this.call('experts', layer, chunk, rows, microBatch);
  }
  combineOutputs(layer: number, routed: RoutedRows, microBatch: number): Promise<void> {
    return this.call('combineOutputs', layer, routed, microBatch);
  }
  lossAndHeadBackward(microBatch: number): Promise<{ lossSum: number; auxLoss: number }> {
    return this.call('lossAndHeadBackward', microBatch);
  }
  combineOutputsBackward(layer: number, microBatch: number): Promise<RoutedRows> {
    return this.call('combineOutputsBackward', layer, microBatch);
  }
  expertsBackward(layer: number, chunk: number, gradRows: ExpertRows[], microBatch: number): Promise<Float32Array[]> {
    return this.call('expertsBackward', layer, chunk, gradRows, microBatch);
  }
  expertsInputGrad(layer: number, chunk: number, gradRows: ExpertRows[], microBatch: number): Promise<Float32Array[]> {
    return this.call('expertsInputGrad', layer, chunk, gradRows, microBatch);
  }
  expertsWeightGrad(layer: number, chunk: number, microBatch: number): Promise<void> {
    return this.call('expertsWeightGrad', layer, chunk, microBatch);
  }
  sharedExpertsBackward(layer: number, microBatch: number): Promise<void> {
    return this.call('sharedExpertsBackward', layer, microBatch);
  }
  routeBackward(layer: number, grads: RoutedInputGrads, microBatch: number): Promise<void> {
    return this.call('routeBackward', layer, grads, microBatch);
  }
  gradientsToReduce(): Promise<Float32Array> {
    return this.call('gradientsToReduce');
  }
  applyUpdate(reduced: Float32Array): Promise<UpdateResult> {
    return this.call('applyUpdate', reduced);
  }
  expertCounts(): Promise<Int32Array> {
    return this.call('expertCounts');
  }
  snapshot(): Promise<ParamsSnapshot> {
    return this.call('snapshot');
  }
  optimizerState(): Promise<NamedOptimizerState> {
    return this.call('optimizerState');
  }
  async close(): Promise<void> {
    await this.thread?.terminate();
  }
}
