/**
 * An example backend module: the built-in `cpu` backend with an artificial delay per expert,
 * as if each local expert's kernel took a fixed extra time. It changes no number, so a cluster
 * with such workers still matches the reference trainer; only the step gets slower.
 *
 *   npx moe worker --scheduler 127.0.0.1:50051 --backend ./examples/delayed-cpu-backend/delayed-cpu-backend.ts
 *
 * The delay (ms per expert that received rows, forward and backward) comes from LoadShard's
 * backend options (`moe train --backend-options '{"delayMsPerExpert": 5}'`), else from the
 * MOE_DELAY_MS_PER_EXPERT environment variable, else 2 ms.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, BackendFactory, ExpertRows, Shard } from '@moe/worker';

/** ms per expert: backend options, then the environment, then 2. */
function delayOf(shard: Shard): number {
  const fromOptions = shard.backendOptions['delayMsPerExpert'];
  const value = fromOptions ?? process.env['MOE_DELAY_MS_PER_EXPERT'] ?? 2;
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`delayed-cpu backend: delayMsPerExpert=${JSON.stringify(value)} must be a number >= 0`);
  return ms;
}

/** Distinct experts among the rows that arrived: the experts that ran. */
function expertsThatRan(rows: readonly ExpertRows[]): number {
  const ids = new Set<number>();
  for (const from of rows) for (const id of from.expertIds) ids.add(id);
  return ids.size;
}

/** Delegates every call to `inner` and sleeps `delayMs` per expert in `experts` and `expertsBackward`. */
export class DelayedBackend implements Backend {
  readonly name = 'delayed-cpu';
  readonly deviceProfile = '';
  private delayMs = 0;
  /** Total artificial delay so far, ms (for tests and logs). */
  delayedMs = 0;

  /** Micro-batches: every call forwards its micro-batch index, so the inner backend keeps them apart. */
  readonly maxMicroBatches?: number;
  /** Checkpoints: the inner backend's AdamW state, when it keeps one. */
  readonly optimizerState?: Backend['optimizerState'];
  /** Redundant experts: the inner backend sums their gradients (every call below forwards as is). */
  readonly sumsReplicaGradients?: boolean;

  constructor(private readonly inner: Backend) {
    this.optimizerState = inner.optimizerState?.bind(inner);
    this.maxMicroBatches = inner.maxMicroBatches;
    this.sumsReplicaGradients = inner.sumsReplicaGradients;
  }

  private async delay(rows: readonly ExpertRows[]): Promise<void> {
    const ms = this.delayMs * expertsThatRan(rows);
    if (ms <= 0) return;
    this.delayedMs += ms;
    await sleep(ms);
  }

  async load(shard: Shard): Promise<string> {
    this.delayMs = delayOf(shard);
    return this.inner.load(shard);
  }
  hiddenSize() {
    return this.inner.hiddenSize();
  }
  topK() {
    return this.inner.topK();
  }
  beginStep(...a: Parameters<Backend['beginStep']>) {
    return this.inner.beginStep(...a);
  }
  route(...a: Parameters<Backend['route']>) {
    return this.inner.route(...a);
  }
  sharedExperts(...a: Parameters<Backend['sharedExperts']>) {
    return this.inner.sharedExperts(...a);
  }
  async experts(...a: Parameters<Backend['experts']>) {
    const out = await this.inner.experts(...a);
    await this.delay(a[2]);
    return out;
  }
  combineOutputs(...a: Parameters<Backend['combineOutputs']>) {
    return this.inner.combineOutputs(...a);
  }
  lossAndHeadBackward(...a: Parameters<Backend['lossAndHeadBackward']>) {
    return this.inner.lossAndHeadBackward(...a);
  }
  combineOutputsBackward(...a: Parameters<Backend['combineOutputsBackward']>) {
    return this.inner.combineOutputsBackward(...a);
  }
  async expertsBackward(...a: Parameters<Backend['expertsBackward']>) {
    const out = await this.inner.expertsBackward(...a);
    await this.delay(a[2]);
    return out;
  }
  sharedExpertsBackward(...a: Parameters<Backend['sharedExpertsBackward']>) {
    return this.inner.sharedExpertsBackward(...a);
  }
  routeBackward(...a: Parameters<Backend['routeBackward']>) {
    return this.inner.routeBackward(...a);
  }
  gradientsToReduce() {
    return this.inner.gradientsToReduce();
  }
  applyUpdate(reduced: Float32Array) {
    return this.inner.applyUpdate(reduced);
  }
  expertCounts() {
    return this.inner.expertCounts();
  }
  snapshot() {
    return this.inner.snapshot();
  }
  close() {
    return this.inner.close();
  }
}

/** The module's factory: wraps a fresh built-in cpu backend. */
const createBackend: BackendFactory = ({ builtin }) => new DelayedBackend(builtin('cpu'));
export default createBackend;
