/**
 * The real math of one rank's share of a training step, on this library's pieces. Synchronous:
 * the worker's `cpu` backend runs it inside a worker thread, so its main thread keeps serving the
 * data plane. Every piece is the one the reference trainer uses, in the same order, so the
 * distributed step reproduces it. Parameters are found by structure (`denseFrom`, `expertFrom`),
 * never by writing a name.
 */
import { combineBackward } from '../combine';
import { parseModelConfig, type ModelConfig } from '../config';
import { embed, embedBackward } from '../embedding';
import { expertForward } from '../expert';
import { accumulateWeightGrads, chunkInputGrads, type ExpertWork, type PendingWeightGrad } from './expert-backward';
import { headBackward, headForward } from '../head';
import { crossEntropy } from '../loss';
import { residualAdd, sharedExpertsBackward, sharedExpertsForward } from '../model';
import { moeInputGrad } from '../moe-input-grad';
import { rmsNorm, rmsNormBackward } from '../norm';
import { AdamW } from '../optimizer';
import { route, routeBackward } from '../router';
import { updateRouterBias } from '../balancing';
import { checksumTensors } from '../checksum';
import { denseFrom, expertFrom, EXPERT_WEIGHTS, type DenseModelParams } from '../param-names';
import { denseParams, expertParams, type ExpertParams, type NamedParam } from '../params';
import { zeros, type Tensor } from '../tensor';
import { addInto, lookup, zerosLikeExpert } from './helpers';
import { namedOptimizerState, restoreOptimizers, type ShardOptimizers } from './named-optimizer';
import { packReplicaGradients, replicaChecksums, replicaGradientLength, unpackReplicaGradients } from './replica-grads';
import { combineRouted, routedInputGrads } from './routed-form';
import type { ExpertRows, NamedOptimizerState, ParamsSnapshot, ReplicaChecksum, RoutedInputGrads, RoutedRows, RouteOutput, ShardParams, StepBatch, UpdateResult } from './types';

type Cache<F extends (...args: never[]) => { cache: unknown }> = ReturnType<F>['cache'];

interface LayerStep {
  x: Tensor;
  norm: Cache<typeof rmsNorm>;
  h: Tensor;
  route: ReturnType<typeof route>;
  sharedCaches: Cache<typeof expertForward>[];
  sharedOut: Tensor;
  /** Absent when the routed rows came summed per token (`tokens` form). */
  slotOutputs?: Tensor;
  work: ExpertWork[][];
  /** [chunk] weight gradients an `expertsInputGrad` left for `expertsWeightGrad`. */
  pendingWeightGrads?: (PendingWeightGrad[] | undefined)[];
  dy?: Tensor;
  dWeights?: Float32Array;
  dhShared?: Tensor;
}

/** One micro-batch's activations and the gradient flowing back through it. */
interface MicroBatchStep {
  batch: StepBatch;
  layers: LayerStep[];
  /** Gradient flowing into the output of the layer being differentiated. */
  dx?: Tensor;
}

/** One rank's share of every training step: forward, backward and update of its parameters. */
export class ShardCompute {
  private config!: ModelConfig;
  private seqLen = 0;
  private params!: DenseModelParams;
  private named!: NamedParam[];
  /** experts[layer]: global id -> params, ascending ids. */
  private localExperts: Map<number, ExpertParams>[] = [];
  private expertGrads: Map<number, ExpertParams>[] = [];
  /** This step's dense gradients, shaped like the dense parameters. */
  private denseGrads!: DenseModelParams;
  private adamDense!: AdamW;
  private adamExperts!: AdamW;
  /** Experts several ranks hold (ascending): their gradients ride on the all-reduce (replica-grads.ts). */
  private replicated: readonly number[] = [];
  /**
   * The step's micro-batches begun so far, each with its own activations: with fb-overlap two are
   * between forward and backward at once. Gradients (denseGrads, expertGrads) are shared: every
   * micro-batch adds into them.
   */
  private micro = new Map<number, MicroBatchStep>();

  load(shard: ShardParams): string {
    this.config = parseModelConfig(shard.model);
    this.seqLen = shard.seqLen;
    const dense = lookup(shard.dense, 'LoadShard: dense parameter');
    this.params = denseFrom(this.config, (name) => dense(name));
    this.named = denseParams(this.params);
    const unknown = [...shard.dense.keys()].filter((n) => !this.named.some((p) => p.name === n));
    if (unknown.length > 0) throw new Error(`LoadShard: unknown dense parameters ${unknown.join(', ')}`);
    this.localExperts = shard.experts.map((layer, l) =>
      new Map(
        [...layer.entries()]
          .sort(([a], [b]) => a - b)
          .map(([id, named]) => {
            const weight = lookup(named, `LoadShard: layer ${l} expert ${id}: parameter`);
            return [id, expertFrom(this.config, (w) => weight(w))];
          }),
      ),
    );
    this.replicated = [...(shard.replicatedExperts ?? [])];
    this.adamDense = new AdamW(shard.optimizer);
    this.adamExperts = new AdamW(shard.optimizer);
    if (shard.optimizerState) restoreOptimizers(this.optimizers(), shard.optimizerState);
    return this.checksum();
  }

  hiddenSize(): number {
    return this.config.hiddenSize;
  }

  topK(): number {
    return this.config.topK;
  }

  /** Begins one micro-batch (`batch.microBatch`, 0 when absent); micro-batch 0 begins the step: gradients zeroed. */
  beginStep(batch: StepBatch & { microBatch?: number }): void {
    const mb = batch.microBatch ?? 0;
    this.micro.set(mb, { batch, layers: [{ x: embed(batch.inputs, this.params.embedding) } as LayerStep] });
    if (mb !== 0) return;
    for (const other of [...this.micro.keys()]) if (other !== 0) this.micro.delete(other);
    this.denseGrads = denseFrom(this.config, (_, shape) => zeros(shape));
    this.expertGrads = this.localExperts.map((layer) => new Map([...layer.entries()].map(([id, p]) => [id, zerosLikeExpert(p)])));
  }

  /** Micro-batch `mb` of this step, or an error naming it. */
  private step(mb: number): MicroBatchStep {
    const m = this.micro.get(mb);
    if (!m) throw new Error(`micro-batch ${mb} was not begun this step`);
    return m;
  }

  route(layer: number, mb = 0): RouteOutput {
    const s = this.step(mb).layers[layer]!;
    const p = this.params.layers[layer]!;
    const norm = rmsNorm(s.x, p.norm, this.config.rmsEps);
    s.norm = norm.cache;
    s.h = norm.y;
    s.route = route(norm.y, p, this.config, { seqLen: this.seqLen, globalSequences: this.step(mb).batch.globalSequences });
    s.work = [];
    return { h: norm.y.data, expertIds: s.route.expertIds, weights: s.route.weights };
  }

  sharedExperts(layer: number, mb = 0): void {
    const s = this.step(mb).layers[layer]!;
    const out = sharedExpertsForward(this.params.layers[layer]!.shared, s.h);
    s.sharedCaches = out.caches;
    s.sharedOut = out.y;
  }

  /** Groups the received rows by expert, ascending expert id, sources in rank order. */
  private gather(layer: number, rows: ExpertRows[]): { expert: number; sources: Int32Array; rows: Int32Array }[] {
    const local = this.localExperts[layer]!;
    const byExpert = new Map<number, { sources: number[]; rows: number[] }>();
    rows.forEach((from, i) => {
      from.expertIds.forEach((expert, r) => {
        if (!local.has(expert)) {
          throw new Error(`rank received a row for expert ${expert} of layer ${layer} from rank ${from.source}, which it does not hold`);
        }
        const list = byExpert.get(expert) ?? { sources: [], rows: [] };
        list.sources.push(i);
        list.rows.push(r);
        byExpert.set(expert, list);
      });
    });
    return [...byExpert.entries()]
      .sort(([a], [b]) => a - b)
      .map(([expert, l]) => ({ expert, sources: Int32Array.from(l.sources), rows: Int32Array.from(l.rows) }));
  }

  experts(layer: number, chunk: number, rows: ExpertRows[], mb = 0): Float32Array[] {
    const H = this.config.hiddenSize;
    const outputs = rows.map((r) => new Float32Array(r.rows.length));
    const work: ExpertWork[] = [];
    for (const group of this.gather(layer, rows)) {
      const input = zeros([group.rows.length, H]);
      for (let i = 0; i < group.rows.length; i++) {
        const r = group.rows[i]!;
        input.data.set(rows[group.sources[i]!]!.rows.subarray(r * H, (r + 1) * H), i * H);
      }
      const out = expertForward(this.localExperts[layer]!.get(group.expert)!, input);
      for (let i = 0; i < group.rows.length; i++) {
        const r = group.rows[i]!;
        outputs[group.sources[i]!]!.set(out.y.data.subarray(i * H, (i + 1) * H), r * H);
      }
      work.push({ ...group, cache: out.cache });
    }
    this.step(mb).layers[layer]!.work[chunk] = work;
    return outputs;
  }

  /** The layer's output from its routed rows: per slot (weighted and summed here) or already summed per token. */
  combineOutputs(layer: number, routed: RoutedRows, mb = 0): void {
    const m = this.step(mb);
    const s = m.layers[layer]!;
    const { combined, slotOutputs } = combineRouted(routed, s.route.weights, s.x.shape[0]!, this.config.topK, this.config.hiddenSize, `combineOutputs layer ${layer}`);
    s.slotOutputs = slotOutputs;
    m.layers[layer + 1] = { x: residualAdd(s.x, s.sharedOut, combined) } as LayerStep;
  }

  lossAndHeadBackward(mb = 0): { lossSum: number; auxLoss: number } {
    const m = this.step(mb);
    const x = m.layers[this.config.layers]!.x;
    const norm = rmsNorm(x, this.params.finalNorm, this.config.rmsEps);
    const logits = headForward(norm.y, this.params.head);
    const ce = crossEntropy(logits, m.batch.targets, m.batch.globalTokens);
    const head = headBackward(norm.y, this.params.head, ce.dLogits);
    addInto(this.denseGrads.head.data, head.dHead.data);
    const back = rmsNormBackward(norm.cache, head.dh);
    addInto(this.denseGrads.finalNorm.data, back.dGain.data);
    m.dx = back.dx;
    let auxLoss = 0;
    for (let l = 0; l < this.config.layers; l++) auxLoss += m.layers[l]!.route.auxLoss;
    return { lossSum: ce.lossSum, auxLoss };
  }

  /** The routed rows' gradient in the forward's form: per slot (weight gradients kept) or per token (dy; they come to routeBackward). */
  combineOutputsBackward(layer: number, mb = 0): RoutedRows {
    const m = this.step(mb);
    const s = m.layers[layer]!;
    s.dy = m.dx!;
    if (!s.slotOutputs) return { form: 'tokens', rows: s.dy.data.slice() }; // a copy: the thread hands results over
    const back = combineBackward(s.dy, s.slotOutputs, s.route.weights, this.config.topK);
    s.dWeights = back.dWeights;
    return { form: 'slots', rows: back.dSlotOutputs.data };
  }

  /** Backward of one chunk through the experts: input-gradient rows by source; weight gradients accumulated. */
  expertsBackward(layer: number, chunk: number, gradRows: ExpertRows[], mb = 0): Float32Array[] {
    const outputs = this.expertsInputGrad(layer, chunk, gradRows, mb);
    this.expertsWeightGrad(layer, chunk, mb);
    return outputs;
  }

  /** The input-gradient half of `expertsBackward`; the chunk's weight gradients wait for `expertsWeightGrad`. */
  expertsInputGrad(layer: number, chunk: number, gradRows: ExpertRows[], mb = 0): Float32Array[] {
    const s = this.step(mb).layers[layer]!;
    const where = `layer ${layer}, chunk ${chunk}`;
    const { outputs, pending } = chunkInputGrads(s.work[chunk] ?? [], gradRows, this.localExperts[layer]!, this.config.hiddenSize, where);
    (s.pendingWeightGrads ??= [])[chunk] = pending;
    return outputs;
  }

  /** The weight-gradient half: adds the chunk's expert weight gradients that `expertsInputGrad` left into the step's. */
  expertsWeightGrad(layer: number, chunk: number, mb = 0): void {
    const s = this.step(mb).layers[layer]!;
    const pending = s.pendingWeightGrads?.[chunk];
    if (!pending) throw new Error(`expertsWeightGrad of layer ${layer}, chunk ${chunk}, micro-batch ${mb} before its expertsInputGrad (or twice)`);
    s.pendingWeightGrads![chunk] = undefined;
    accumulateWeightGrads(pending, this.expertGrads[layer]!);
  }

  sharedExpertsBackward(layer: number, mb = 0): void {
    const s = this.step(mb).layers[layer]!;
    const back = sharedExpertsBackward(this.params.layers[layer]!.shared, s.sharedCaches, s.dy!);
    const acc = this.denseGrads.layers[layer]!.shared;
    back.grads.forEach((g, i) => {
      for (const w of EXPERT_WEIGHTS) addInto(acc[i]![w].data, g[w].data);
    });
    s.dhShared = back.dh;
  }

  /** Router and norm backward from the routed inputs' gradient, per slot or per token (with the weight gradients). */
  routeBackward(layer: number, grads: RoutedInputGrads, mb = 0): void {
    const m = this.step(mb);
    const s = m.layers[layer]!;
    const forwardForm = s.slotOutputs ? 'slots' : 'tokens';
    const routed = routedInputGrads(grads, forwardForm, s.dWeights, s.x.shape[0]!, this.config.topK, this.config.hiddenSize, `routeBackward layer ${layer}`);
    const router = routeBackward(s.route.cache, routed.dWeights);
    addInto(this.denseGrads.layers[layer]!.router.data, router.dRouter.data);
    // Per token, the routed gradient is one more term after the shared and router ones.
    const dh = moeInputGrad(s.dhShared!, router.dh, routed.rows, routed.rowsPerToken);
    const norm = rmsNormBackward(s.norm, dh);
    addInto(this.denseGrads.layers[layer]!.norm.data, norm.dGain.data);
    const dx = zeros(s.x.shape);
    for (let i = 0; i < dx.data.length; i++) dx.data[i] = s.dy!.data[i]! + norm.dx.data[i]!;
    m.dx = dx;
  }

  /**
   * Dense gradients (trainable, in `denseParams` order), this step's expert counts, then the
   * replicated experts' blocks (replica-grads.ts); every micro-batch's embedding backward first.
   */
  gradientsToReduce(): Float32Array {
    for (const m of this.micro.values()) {
      const dEmbedding = embedBackward(m.batch.inputs, m.dx!, this.config.vocabSize);
      addInto(this.denseGrads.embedding.data, dEmbedding.data);
    }
    const counts = this.expertCounts();
    const grads = denseParams(this.denseGrads).filter((p) => p.trainable);
    const total = grads.reduce((n, p) => n + p.tensor.data.length, 0) + counts.length;
    const flat = new Float32Array(total + replicaGradientLength(this.config, this.replicated));
    let offset = 0;
    for (const p of grads) {
      flat.set(p.tensor.data, offset);
      offset += p.tensor.data.length;
    }
    flat.set(counts, offset);
    packReplicaGradients(flat, total, this.expertGrads, this.replicated, this.replicaBlock());
    return flat;
  }

  applyUpdate(reduced: Float32Array): UpdateResult {
    const trainable = this.named.filter((p) => p.trainable);
    const grads: Tensor[] = [];
    let offset = 0;
    for (const p of trainable) {
      grads.push({ shape: p.tensor.shape, data: reduced.subarray(offset, offset + p.tensor.data.length) });
      offset += p.tensor.data.length;
    }
    this.adamDense.step(
      trainable.map((p) => p.tensor),
      grads,
    );
    const countsEnd = offset + this.config.layers * this.config.routedExperts;
    unpackReplicaGradients(reduced, countsEnd, this.expertGrads, this.replicated, this.replicaBlock());
    const params: Tensor[] = [];
    const expertGrads: Tensor[] = [];
    this.localExperts.forEach((layer, l) => {
      for (const [id, p] of layer) {
        const g = this.expertGrads[l]!.get(id)!;
        params.push(p.w1, p.w3, p.w2);
        expertGrads.push(g.w1, g.w3, g.w2);
      }
    });
    this.adamExperts.step(params, expertGrads);
    if (this.config.balancing === 'bias') {
      const E = this.config.routedExperts;
      this.params.layers.forEach((layer, l) => {
        updateRouterBias(layer.routerBias, reduced.subarray(offset + l * E, offset + (l + 1) * E), this.config.biasUpdateSpeed);
      });
    }
    return this.replicated.length > 0 ? { checksum: this.checksum(), replicaChecksums: this.replicaChecksums() } : { checksum: this.checksum() };
  }

  /** The checksum of this rank's copy of every replicated expert it holds. */
  replicaChecksums(): ReplicaChecksum[] {
    return replicaChecksums(this.localExperts, this.replicated);
  }

  /** Values of one replicated expert's block in the all-reduce: 3·H·F. */
  private replicaBlock(): number {
    return 3 * this.config.hiddenSize * this.config.expertFfnSize;
  }

  expertCounts(): Int32Array {
    const E = this.config.routedExperts;
    const counts = new Int32Array(this.config.layers * E);
    for (const m of this.micro.values()) {
      m.layers.forEach((s, l) => {
        if (l < this.config.layers && s.route) s.route.counts.forEach((c, e) => (counts[l * E + e]! += c));
      });
    }
    return counts;
  }

  /** The AdamW state of the dense params and this worker's experts, by name (empty before the first step). */
  optimizerState(): NamedOptimizerState {
    return namedOptimizerState(this.optimizers());
  }

  private optimizers(): ShardOptimizers {
    return { named: this.named, experts: this.localExperts, dense: this.adamDense, expert: this.adamExperts };
  }

  snapshot(): ParamsSnapshot {
    return {
      dense: this.named,
      experts: this.localExperts.map((layer) => new Map([...layer.entries()].map(([id, p]) => [id, expertParams(p)]))),
    };
  }

  private checksum(): string {
    return checksumTensors(this.named.map((p) => p.tensor));
  }
}
