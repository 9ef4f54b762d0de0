import type { LinkModel } from '@moe/sim';
import type { Backend, ExpertRows, MicroBatch, ParamsSnapshot, RoutedForm, RoutedInputGrads, RoutedRows, RouteOutput, Shard, UpdateResult } from '../../backend';
import { MAX_MICRO_BATCHES } from '@moe/schedule';
import { replicaGradientLength, ShardCompute, type ReplicaChecksum } from '@moe/model';
import { planExperts } from '@moe/placement';
import { linkModelOf } from '@moe/sim';
import { CostModel, type OpCost } from '@moe/sim';
import { groupLimitedExpertIds, mixSeed, seededExpertIds, skewedExpertIds } from '@moe/sim';
import { parseSimOptions, type SimOptions } from './sim-options';
import { DeviceClock, type DeviceScheduling, type DeviceSpan } from './device-clock';
import { SimShapeError, SimStateError, type SimOpKind, type SimOpRecord } from './sim-records';

/** What the sim backend keeps of the real shard. */
interface ShardInfo {
  rank: number;
  worldSize: number;
  layers: number;
  /** E: the real model's routed experts. */
  experts: number;
  topK: number;
  vocab: number;
  /** [E] each expert's rank under the contiguous placement: skewed routing's hot experts, whatever the run's placement. */
  skewOwner: readonly number[];
  /** Node-limited routing: expert groups and how many a token may reach (groupLimitedExpertIds). */
  routerGroups: number;
  routerGroupTopK: number;
}

export interface SimBackendOptions {
  /** Profile used when backendOptions names none; also what Register reports before LoadShard. */
  profile?: string;
}

/**
 * The `sim` backend: models each compute op's duration on a device profile and waits for it on a
 * device thread of its own (never on the event loop that serves the data plane), while the payloads of the modeled sizes really cross the
 * transport. It does no learning: parameters never change, the loss is a fixed ln(vocab) per
 * token, and `applyUpdate` returns the checksum of the unchanged dense params, so replicas agree.
 *
 * Shapes (T = tokensPerRank or the real batch's tokens, k = the real top-k, S = T*k,
 * H = the modeled hidden size): `route` gives h [T, H] (cheap deterministic values) and expert ids
 * [S] drawn uniformly over the real model's routed experts (or, with `routing: "skewed"`, all from
 * the experts rank 0 holds under the contiguous placement), so the ranks holding them receive the rows,
 * and weights [S] of 1/k; `experts` returns its input rows (same sizes); `combineOutputsBackward`
 * gives [S, H] or, when the forward's routed rows came summed per token (the hierarchical
 * all-to-all), [T, H].
 * The executor must size its slot arrays from `route`'s output when tokensPerRank differs from
 * the batch.
 */
export class SimBackend implements Backend {
  readonly name = 'sim';
  readonly maxMicroBatches = MAX_MICRO_BATCHES;
  /** The all-reduce carries the replicated experts' (zero) gradient blocks, as cpu's does; the copies never change. */
  readonly sumsReplicaGradients = true;
  private readonly defaultProfile?: string;
  private options?: SimOptions;
  private costs?: CostModel;
  private shard?: ShardInfo;
  private compute?: ShardCompute;
  private checksum = '';
  /** Length of the dense part of `gradientsToReduce` (the real model's trainable dense params). */
  private denseGradLength = 0;
  /** Length of its replicated experts' part (after the counts), and their (constant) checksums. */
  private replicaGradLength = 0;
  private replicaChecksums: ReplicaChecksum[] = [];
  /** [H]: the pattern every row of h and of the gradients carries. */
  private rowPattern = new Float32Array(0);
  /** rows(count)'s arrays, by count (emptied when the pattern changes). */
  private readonly patternRows = new Map<number, Float32Array>();
  /** The step's micro-batches begun so far, and the tokens each one models. */
  private microBatches = new Map<number, { batch: MicroBatch; tokens: number; forms: Map<number, RoutedForm> }>();
  /** Rows of each chunk whose expert weight gradients are pending (`${microBatch}/${layer}/${chunk}`): experts_wgrad costs as many. */
  private pendingWeightRows = new Map<string, number>();
  /** [layers * E] experts routed this step. */
  private counts = new Int32Array(0);
  private records: SimOpRecord[] = [];
  /** The modeled device: one op at a time, on a clock of its own thread. */
  private readonly clock = new DeviceClock();
  private device: Promise<void> = Promise.resolve();
  /** The device's span and modeled duration of the op that ended last (see deviceTiming). */
  private lastSpan?: DeviceSpan & { modeledMs: number };

  constructor(options: SimBackendOptions = {}) {
    this.defaultProfile = options.profile;
  }

  get deviceProfile(): string {
    return this.options?.profile.name ?? this.defaultProfile ?? '';
  }

  async load(shard: Shard): Promise<string> {
    const options = parseSimOptions(shard.backendOptions, this.defaultProfile);
    // The real (tiny) parameters: validated and checksummed exactly as the cpu backend does.
    const compute = new ShardCompute();
    const checksum = compute.load(shard);
    const model = shard.model;
    this.options = options;
    this.compute = compute;
    this.checksum = checksum;
    this.costs = new CostModel(options.model, options.profile, {
      worldSize: shard.worldSize,
      layers: model.layers,
      computeScale: options.computeScale,
      accumulationSteps: options.accumulationSteps,
      dilation: options.dilation,
    });
    this.shard = {
      rank: shard.rank,
      worldSize: shard.worldSize,
      layers: model.layers,
      experts: model.routedExperts,
      topK: model.topK,
      vocab: model.vocabSize,
      skewOwner: planExperts(model.routedExperts, shard.worldSize, 'contiguous'),
      routerGroups: model.routerGroups,
      routerGroupTopK: model.routerGroupTopK,
    };
    this.denseGradLength = compute
      .snapshot()
      .dense.filter((p) => p.trainable)
      .reduce((n, p) => n + p.tensor.data.length, 0);
    this.replicaGradLength = replicaGradientLength(model, shard.replicatedExperts ?? []);
    this.replicaChecksums = compute.replicaChecksums();
    const H = options.model.hiddenSize;
    this.patternRows.clear();
    this.rowPattern = Float32Array.from({ length: H }, (_, i) => (((i * 37) % 101) - 50) / 100);
    return checksum;
  }

  /** The links of the modeled cluster: the worker wraps its transport in a ShapedTransport with it. */
  linkModel(): LinkModel | undefined {
    const o = this.options;
    if (!o) return undefined;
    const link = linkModelOf(o.profile, o.nodeSize, o.dilation);
    const scaled = (spec: LinkModel['intra']) => ({ ...spec, latencyUs: spec.latencyUs * o.latencyScale });
    return { ...link, intra: scaled(link.intra), inter: scaled(link.inter), sharing: o.linkSharing };
  }

  hiddenSize(): number {
    return this.loaded().options.model.hiddenSize;
  }

  topK(): number {
    return this.loaded().shard.topK;
  }

  /** Resolved options (profile, modeled model, dilation ...); after `load`. */
  simOptions(): SimOptions {
    return this.loaded().options;
  }

  /** The cost model of the loaded run. */
  costModel(): CostModel {
    return this.loaded().costs;
  }

  /** How the device thread is scheduled ("fifo": real-time; see DeviceClock); undefined before the first op. */
  deviceScheduling(): DeviceScheduling | undefined {
    return this.clock.scheduling();
  }

  /** The compute ops of the current (or last) step, in the order they ran. */
  stepRecords(): SimOpRecord[] {
    return [...this.records];
  }

  /** Sums of the current (or last) step's records: predicted vs waited compute time, ms. */
  stepSummary(): { ops: number; modeledMs: number; measuredMs: number } {
    return this.records.reduce((s, r) => ({ ops: s.ops + 1, modeledMs: s.modeledMs + r.modeledMs, measuredMs: s.measuredMs + r.measuredMs }), {
      ops: 0,
      modeledMs: 0,
      measuredMs: 0,
    });
  }

  /**
   * Micro-batch 0 starts the step (counts and records reset). With `tokensPerRank`, a micro-batch
   * models its share of those tokens, in proportion to the sequences it holds.
   */
  async beginStep(batch: MicroBatch): Promise<void> {
    const { options, shard, costs } = this.loaded();
    const index = batch.microBatch ?? 0;
    if (index === 0) {
      this.microBatches.clear();
      this.pendingWeightRows.clear();
      this.counts = new Int32Array(shard.layers * shard.experts);
      this.records = [];
    }
    const stepTokens = batch.stepTokens ?? batch.inputs.length;
    const tokens = options.tokensPerRank === undefined ? batch.inputs.length : Math.round((options.tokensPerRank * batch.inputs.length) / stepTokens);
    this.microBatches.set(index, { batch, tokens, forms: new Map() });
    await this.run('begin', -1, -1, index, costs.begin(tokens));
  }

  async route(layer: number, microBatch = 0): Promise<RouteOutput> {
    const { options, shard, costs } = this.loaded();
    const { batch, tokens } = this.inStep('route', microBatch);
    await this.run('route', layer, -1, microBatch, costs.route(tokens));
    // Micro-batch 0 keeps the seed a step of one micro-batch has always had.
    const seed = mixSeed(microBatch === 0 ? options.seed : mixSeed(options.seed, microBatch), shard.rank, batch.step, layer);
    const { routerGroups: groups, routerGroupTopK: groupTopK } = shard;
    const expertIds =
      options.routing === 'skewed'
        ? skewedExpertIds(tokens, shard.topK, shard.skewOwner, seed)
        : groups > 1 && groupTopK < groups
          ? groupLimitedExpertIds(tokens, shard.topK, shard.experts, groups, groupTopK, seed)
          : seededExpertIds(tokens, shard.topK, shard.experts, seed);
    const counts = this.counts.subarray(layer * shard.experts, (layer + 1) * shard.experts);
    for (const e of expertIds) counts[e]!++;
    return { h: this.rows(tokens), expertIds, weights: new Float32Array(expertIds.length).fill(1 / shard.topK) };
  }

  async sharedExperts(layer: number, microBatch = 0): Promise<void> {
    return this.run('shared', layer, -1, microBatch, this.loaded().costs.shared(this.inStep('sharedExperts', microBatch).tokens));
  }

  async experts(layer: number, chunk: number, rows: ExpertRows[], microBatch = 0): Promise<Float32Array[]> {
    const n = this.checkRows('experts', layer, chunk, rows);
    await this.run('experts', layer, chunk, microBatch, this.loaded().costs.experts(n));
    return rows.map((r) => r.rows);
  }

  async combineOutputs(layer: number, routed: RoutedRows, microBatch = 0): Promise<void> {
    const { tokens, forms } = this.inStep('combineOutputs', microBatch);
    this.checkRouted('combineOutputs', layer, microBatch, routed.form, routed.rows);
    forms.set(layer, routed.form);
    return this.run('post', layer, -1, microBatch, this.loaded().costs.post(tokens, this.routedRows(microBatch, routed.form)));
  }

  /** Sim does no learning: a fixed ln(vocab) per token (this micro-batch's share of the global mean), no aux loss. */
  async lossAndHeadBackward(microBatch = 0): Promise<{ lossSum: number; auxLoss: number }> {
    const { shard, costs } = this.loaded();
    const { batch, tokens } = this.inStep('lossAndHeadBackward', microBatch);
    await this.run('loss', -1, -1, microBatch, costs.loss(tokens));
    return { lossSum: (Math.log(shard.vocab) * batch.inputs.length) / Math.max(1, batch.globalTokens), auxLoss: 0 };
  }

  async combineOutputsBackward(layer: number, microBatch = 0): Promise<RoutedRows> {
    const { tokens, forms } = this.inStep('combineOutputsBackward', microBatch);
    const form = forms.get(layer);
    if (!form) throw new SimStateError(`sim backend: combineOutputsBackward of layer ${layer} micro-batch ${microBatch} before its combineOutputs`);
    const rows = this.routedRows(microBatch, form);
    await this.run('post_bwd', layer, -1, microBatch, this.loaded().costs.postBackward(tokens, rows));
    return { form, rows: this.rows(rows) };
  }

  async expertsBackward(layer: number, chunk: number, gradRows: ExpertRows[], microBatch = 0): Promise<Float32Array[]> {
    const n = this.checkRows('expertsBackward', layer, chunk, gradRows);
    await this.run('experts_bwd', layer, chunk, microBatch, this.loaded().costs.expertsBackward(n));
    return gradRows.map((r) => r.rows);
  }

  async expertsInputGrad(layer: number, chunk: number, gradRows: ExpertRows[], microBatch = 0): Promise<Float32Array[]> {
    const n = this.checkRows('expertsInputGrad', layer, chunk, gradRows);
    this.pendingWeightRows.set(`${microBatch}/${layer}/${chunk}`, n);
    await this.run('experts_dgrad', layer, chunk, microBatch, this.loaded().costs.expertsInputGrad(n));
    return gradRows.map((r) => r.rows);
  }

  async expertsWeightGrad(layer: number, chunk: number, microBatch = 0): Promise<void> {
    const key = `${microBatch}/${layer}/${chunk}`;
    const n = this.pendingWeightRows.get(key);
    if (n === undefined) throw new SimStateError(`sim backend: expertsWeightGrad of layer ${layer}, chunk ${chunk}, micro-batch ${microBatch} before its expertsInputGrad (or twice)`);
    this.pendingWeightRows.delete(key);
    return this.run('experts_wgrad', layer, chunk, microBatch, this.loaded().costs.expertsWeightGrad(n));
  }

  async sharedExpertsBackward(layer: number, microBatch = 0): Promise<void> {
    return this.run('shared_bwd', layer, -1, microBatch, this.loaded().costs.sharedBackward(this.inStep('sharedExpertsBackward', microBatch).tokens));
  }

  async routeBackward(layer: number, grads: RoutedInputGrads, microBatch = 0): Promise<void> {
    const { tokens } = this.inStep('routeBackward', microBatch);
    this.checkRouted('routeBackward', layer, microBatch, grads.form, grads.rows);
    if (grads.form === 'tokens' && grads.dWeights.length !== this.slots(microBatch)) {
      throw new SimShapeError(`routeBackward layer ${layer}: ${grads.dWeights.length} weight gradients, expected S=${this.slots(microBatch)}`);
    }
    return this.run('route_bwd', layer, -1, microBatch, this.loaded().costs.routeBackward(tokens));
  }

  /** [dense trainable params (zeros) + layers*E counts + replicated experts' blocks (zeros)]: the real model's layout, so the all-reduce matches cpu's. */
  async gradientsToReduce(): Promise<Float32Array> {
    // The embedding backward of every micro-batch's tokens.
    const tokens = [...this.microBatches.values()].reduce((n, m) => n + m.tokens, 0);
    await this.run('grads', -1, -1, -1, this.loaded().costs.grads(tokens));
    const flat = new Float32Array(this.denseGradLength + this.counts.length + this.replicaGradLength);
    flat.set(this.counts, this.denseGradLength);
    return flat;
  }

  async applyUpdate(reduced: Float32Array): Promise<UpdateResult> {
    const expected = this.denseGradLength + this.counts.length + this.replicaGradLength;
    if (reduced.length !== expected) {
      throw new SimShapeError(`applyUpdate: reduced gradients have ${reduced.length} values, expected ${expected}`);
    }
    await this.run('update', -1, -1, -1, this.loaded().costs.update());
    return this.replicaChecksums.length > 0 ? { checksum: this.checksum, replicaChecksums: this.replicaChecksums } : { checksum: this.checksum };
  }

  async expertCounts(): Promise<Int32Array> {
    return this.counts.slice();
  }

  async snapshot(): Promise<ParamsSnapshot> {
    const compute = this.compute;
    if (!compute) throw new SimStateError('sim backend: snapshot before load');
    return compute.snapshot();
  }

  async close(): Promise<void> {
    await this.device;
    await this.clock.close();
  }

  private loaded(): { options: SimOptions; costs: CostModel; shard: ShardInfo } {
    if (!this.options || !this.costs || !this.shard) throw new SimStateError('sim backend: call load(shard) first');
    return { options: this.options, costs: this.costs, shard: this.shard };
  }

  private inStep(method: string, microBatch: number): { batch: MicroBatch; tokens: number; forms: Map<number, RoutedForm> } {
    const state = this.microBatches.get(microBatch);
    if (!state) throw new SimStateError(`sim backend: ${method} of micro-batch ${microBatch} before its beginStep`);
    return state;
  }

  private slots(microBatch: number): number {
    return this.inStep('slots', microBatch).tokens * this.loaded().shard.topK;
  }

  /**
   * [count, H] rows of the row pattern, one array per count, shared by every call. The executor
   * only reads these (h and the routed gradients are all-to-all sources); a fresh array a call
   * was the sim's share of the megabytes a step allocates, which set off full garbage collections.
   */
  private rows(count: number): Float32Array {
    const cached = this.patternRows.get(count);
    if (cached) return cached;
    const H = this.rowPattern.length;
    const out = new Float32Array(count * H);
    for (let r = 0; r < count; r++) out.set(this.rowPattern, r * H);
    this.patternRows.set(count, out);
    return out;
  }

  /** Checks every source's rows are [n, H]; returns the total n. */
  private checkRows(method: string, layer: number, chunk: number, rows: ExpertRows[]): number {
    const H = this.hiddenSize();
    let n = 0;
    for (const r of rows) {
      if (r.rows.length !== r.expertIds.length * H) {
        throw new SimShapeError(
          `${method} layer ${layer} chunk ${chunk}: rows from rank ${r.source} have ${r.rows.length} values, ` +
            `expected ${r.expertIds.length} rows x H=${H} = ${r.expertIds.length * H}`,
        );
      }
      n += r.expertIds.length;
    }
    return n;
  }

  /** Rows of a routed array in `form`: S slots or T tokens (the post op models a weighted sum of those). */
  private routedRows = (microBatch: number, form: RoutedForm): number => (form === 'slots' ? this.slots(microBatch) : this.inStep('routedRows', microBatch).tokens);

  private checkRouted(method: string, layer: number, microBatch: number, form: RoutedForm, values: Float32Array): void {
    const rows = this.routedRows(microBatch, form);
    if (values.length !== rows * this.hiddenSize()) {
      const mb = microBatch > 0 ? ` micro-batch ${microBatch}` : '';
      throw new SimShapeError(`${method} layer ${layer}${mb}: ${values.length} values, expected ${form === 'slots' ? 'S' : 'T'}=${rows} ${form} x H=${this.hiddenSize()} = ${rows * this.hiddenSize()}`);
    }
  }

  /**
   * Runs one modeled op on the device after the previous one: the device thread waits its
   * modeled duration (DeviceClock) and measures it; the op is recorded with the device's span.
   */
  private run(kind: SimOpKind, layer: number, chunk: number, microBatch: number, cost: OpCost): Promise<void> {
    const costs = this.loaded().costs;
    const modeledMs = costs.ms(cost);
    const flops = Object.values(cost.flops).reduce((a, b) => a + (b ?? 0), 0);
    const op = this.device.then(async () => {
      const span = await this.clock.run(modeledMs);
      this.lastSpan = { ...span, modeledMs };
      this.records.push({ kind, layer, chunk, microBatch, flops, bytes: cost.bytes, modeledMs, measuredMs: span.endMs - span.startMs });
    });
    this.device = op.catch(() => {});
    return op;
  }

  /**
   * The device's start and end (performance.now() ms) and the modeled duration of the compute op
   * that ended last: the executor records these, not when the event loop got round to noticing.
   */
  deviceTiming(): { startMs: number; endMs: number; modeledMs: number } | undefined {
    return this.lastSpan;
  }
}
