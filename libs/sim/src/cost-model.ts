/**
 * The layer a `sim` worker models, and the cost of each compute op of a step on a device.
 *
 * Default: a DeepSeek-V3 MoE block (DeepSeek-V3 Technical Report, arXiv:2412.19437, and its
 * released config.json): hidden 7168, MLA attention (128 heads, q LoRA rank 1536, kv LoRA rank
 * 512, qk nope/rope head dims 128/64, v head dim 128), expert FFN 2048 (SwiGLU), 256 routed
 * experts and 1 shared, vocabulary 129280. Every field can be set smaller (tests and benchmarks
 * scale `hiddenSize` down: the rows that cross the wire really are `hiddenSize` values wide).
 * Top-k is NOT a field here: it is the real model's (the routing is on the real experts), so to
 * model DeepSeek-V3 exactly give the real model topK 8.
 *
 * Cost of one compute op (ms of wall clock on this host):
 *
 *     ms = max( sum_d FLOPs_d / (peak_d * mfu),  bytes / hbm_bw ) * computeScale * dilation
 *
 * where FLOPs_d are the op's floating-point operations done in dtype d (peak_d: the profile's
 * dense TFLOP/s of d), bytes the HBM traffic it needs (weights read once per op + activations in
 * and out, bf16 activations), hbm_bw the profile's HBM bandwidth. FLOPs count a multiply-add as 2.
 * Per op, with T tokens on this rank, S = T*k slots, n rows received for the local experts,
 * H hidden, F expert FFN, V vocabulary, L attention context (seqLen), e = routed experts / ranks:
 *
 * - begin (embedding): bytes = 2*T*H*2 (gather + write), no FLOPs.
 * - route (attention block + MoE norm + router), attention in front of the MoE like a
 *   transformer block: projections 2*T*P_attn in `gemmDtype` (P_attn = the MLA projection
 *   parameters), scores and values 2*T*heads*(qk_head + v_head)*L/2 in bf16 (causal: on average
 *   L/2 keys), router 2*T*H*E in bf16; bytes = weights + activations.
 * - shared: 2*T*3*H*F per shared expert (SwiGLU: w1, w3, w2) in `gemmDtype`.
 * - experts: 2*n*3*H*F in `gemmDtype` (n: the rows that really arrived); bytes include the
 *   weights of min(e, n) experts, read once per call (so small chunks become memory-bound).
 * - post (combine): 2*S*H FLOPs, bytes (S*H + 3*T*H)*2: memory-bound.
 * - loss: final norm, head and cross-entropy forward and backward: 3 * 2*T*H*V in bf16.
 * - backwards (post_bwd, experts_bwd, shared_bwd, route_bwd): 2x their forward FLOPs (input and
 *   weight gradients); bytes 2x.
 * - experts_dgrad and experts_wgrad, the two halves of experts_bwd (zero-bubble's B and W): 1x
 *   the forward each. Input gradients dy·w2ᵀ, da·w1ᵀ, db·w3ᵀ and weight gradients xᵀ·da, xᵀ·db,
 *   gᵀ·dy are three [n,H]x[H,F]-sized GEMMs each, as many FLOPs as the forward's three; the B half
 *   reads the weights, the W half writes as many bytes of their gradients.
 * - grads (embedding backward): bytes like begin.
 * - update (AdamW): bytes-bound, 28 bytes per parameter this rank updates (fp32 master weight,
 *   gradient, m and v read; weight, m and v written); parameters: every layer's attention,
 *   router and shared experts, the embedding and head (replicated dense), plus e local experts
 *   per layer.
 */
import { deviceProfile, peakFlops, type DeviceProfile, type Dtype } from './devices';

export interface ModeledAttention {
  heads: number;
  /** Rank of the query down-projection; 0 means a plain H -> heads*(nope+rope) query projection. */
  qLoraRank: number;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
}

export interface ModeledModel {
  /** H: the columns of every row on the wire. */
  hiddenSize: number;
  /** F: each expert's SwiGLU intermediate size. */
  expertFfnSize: number;
  /** Routed experts of the modeled layer: sets e = routedExperts / ranks for weight and optimizer bytes. */
  routedExperts: number;
  sharedExperts: number;
  attention: ModeledAttention;
  /** L: context length the attention scores are computed over. */
  seqLen: number;
  vocabSize: number;
  /** Dtype of the GEMMs of experts, shared experts and attention projections (DeepSeek-V3 used fp8). */
  gemmDtype: Dtype;
  /** Fraction of the dense peak the compute reaches (model FLOPs utilisation of a kernel). */
  mfu: number;
}

/** DeepSeek-V3's MoE block (arXiv:2412.19437 §2 and §4.2, config.json of deepseek-ai/DeepSeek-V3). */
export const DEEPSEEK_V3_LAYER: Readonly<ModeledModel> = Object.freeze({
  hiddenSize: 7168,
  expertFfnSize: 2048,
  routedExperts: 256,
  sharedExperts: 1,
  attention: Object.freeze({ heads: 128, qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 }),
  seqLen: 4096,
  vocabSize: 129280,
  gemmDtype: 'bf16',
  mfu: 0.6,
});

export type ModeledModelInput = Partial<Omit<ModeledModel, 'attention'>> & { attention?: Partial<ModeledAttention> };

/** `input` over the DeepSeek-V3 defaults. */
export function resolveModeledModel(input: ModeledModelInput = {}): ModeledModel {
  return { ...DEEPSEEK_V3_LAYER, ...input, attention: { ...DEEPSEEK_V3_LAYER.attention, ...input.attention } };
}

/** Work of one op: FLOPs by dtype and HBM bytes. */
export interface OpCost {
  flops: Partial<Record<Dtype, number>>;
  bytes: number;
}

/** Bytes of one activation value (bf16). */
const ACT = 2;
/** Bytes per parameter an AdamW step moves (fp32 weight, grad, m, v read; weight, m, v written). */
const ADAMW_BYTES_PER_PARAM = 28;
const DTYPE_BYTES: Record<Dtype, number> = { fp8: 1, bf16: 2, tf32: 4, fp32: 4 };

const scale = (a: OpCost, factor: number): OpCost => ({
  flops: Object.fromEntries(Object.entries(a.flops).map(([d, f]) => [d, f * factor])),
  bytes: a.bytes * factor,
});

export interface CostModelOptions {
  /** Ranks in the run: each holds routedExperts / worldSize of the modeled experts. */
  worldSize: number;
  /** Real model layers (the optimizer updates all of them). */
  layers: number;
  /** Multiplies every compute duration (sets the compute-to-communication ratio); default 1. */
  computeScale?: number;
  /** Time-dilation factor >= 1; default 1. */
  dilation?: number;
  /**
   * Micro-batches per optimizer step (gradient accumulation); default 1. A modeled step is one
   * micro-batch, so the AdamW update's cost is spread over this many of them.
   */
  accumulationSteps?: number;
}

/**
 * FLOPs, bytes and modeled duration of every compute op of a step (see the file's docstring for
 * the formula). Token counts are per rank.
 */
export class CostModel {
  readonly profile: DeviceProfile;
  private readonly gemm: Dtype;
  private readonly computeScale: number;
  private readonly dilation: number;
  /** e: modeled experts this rank holds. */
  readonly localExperts: number;

  constructor(
    readonly model: ModeledModel,
    profile: DeviceProfile | string,
    readonly options: CostModelOptions,
  ) {
    this.profile = typeof profile === 'string' ? deviceProfile(profile) : profile;
    this.gemm = model.gemmDtype;
    peakFlops(this.profile, this.gemm); // throws UnsupportedDtypeError now, not mid-step
    this.computeScale = options.computeScale ?? 1;
    this.dilation = options.dilation ?? 1;
    this.localExperts = Math.max(1, Math.ceil(model.routedExperts / options.worldSize));
  }

  /** Wall-clock ms of `cost` on the modeled device: max(compute, memory) * computeScale * dilation. */
  ms(cost: OpCost): number {
    let computeS = 0;
    for (const [d, f] of Object.entries(cost.flops) as [Dtype, number][]) {
      if (f > 0) computeS += f / (peakFlops(this.profile, d) * this.model.mfu);
    }
    const memoryS = cost.bytes / (this.profile.hbmGBps * 1e9);
    return Math.max(computeS, memoryS) * 1e3 * this.computeScale * this.dilation;
  }

  /** Parameters of the MLA projections of one layer (q, kv down/up, output). */
  attentionParams(): number {
    const { hiddenSize: H } = this.model;
    const a = this.model.attention;
    const qk = a.qkNopeHeadDim + a.qkRopeHeadDim;
    const q = a.qLoraRank > 0 ? H * a.qLoraRank + a.qLoraRank * a.heads * qk : H * a.heads * qk;
    const kv = H * (a.kvLoraRank + a.qkRopeHeadDim) + a.kvLoraRank * a.heads * (a.qkNopeHeadDim + a.vHeadDim);
    const out = a.heads * a.vHeadDim * H;
    return q + kv + out;
  }

  /** Parameters of one SwiGLU expert: w1, w3 [H, F] and w2 [F, H]. */
  expertParams(): number {
    return 3 * this.model.hiddenSize * this.model.expertFfnSize;
  }

  begin(tokens: number): OpCost {
    return { flops: {}, bytes: 2 * tokens * this.model.hiddenSize * ACT };
  }

  /** Attention block + MoE norm + router on `tokens` tokens. */
  route(tokens: number): OpCost {
    const { hiddenSize: H, routedExperts: E, seqLen: L } = this.model;
    const a = this.model.attention;
    const P = this.attentionParams();
    const core = 2 * tokens * a.heads * (a.qkNopeHeadDim + a.qkRopeHeadDim + a.vHeadDim) * (L / 2);
    const activations = tokens * ACT * (4 * H + 2 * a.heads * (a.qkNopeHeadDim + a.qkRopeHeadDim + a.vHeadDim));
    const flops: Partial<Record<Dtype, number>> = { bf16: core + 2 * tokens * H * E };
    flops[this.gemm] = (flops[this.gemm] ?? 0) + 2 * tokens * P;
    return { flops, bytes: P * DTYPE_BYTES[this.gemm] + H * E * ACT + activations };
  }

  shared(tokens: number): OpCost {
    const { hiddenSize: H, expertFfnSize: F, sharedExperts } = this.model;
    return {
      flops: { [this.gemm]: sharedExperts * 2 * tokens * 3 * H * F },
      bytes: sharedExperts * this.expertParams() * DTYPE_BYTES[this.gemm] + tokens * ACT * (2 * H + 3 * F),
    };
  }

  /** The local experts on `rows` received rows (all sources of one chunk together). */
  experts(rows: number): OpCost {
    const { hiddenSize: H, expertFfnSize: F } = this.model;
    const touched = Math.min(this.localExperts, rows);
    return {
      flops: { [this.gemm]: 2 * rows * 3 * H * F },
      bytes: touched * this.expertParams() * DTYPE_BYTES[this.gemm] + rows * ACT * (2 * H + 3 * F),
    };
  }

  /** Weighted sum of S = slots outputs + shared output + residual. */
  post(tokens: number, slots: number): OpCost {
    const H = this.model.hiddenSize;
    return { flops: { bf16: 2 * slots * H + 2 * tokens * H }, bytes: (slots * H + 3 * tokens * H) * ACT };
  }

  loss(tokens: number): OpCost {
    const { hiddenSize: H, vocabSize: V } = this.model;
    // Head weights read twice and their gradient written in fp32; fp32 logits written and read back.
    return { flops: { bf16: 3 * 2 * tokens * H * V }, bytes: 2 * V * H * ACT + V * H * 4 + 2 * tokens * V * 4 };
  }

  postBackward(tokens: number, slots: number): OpCost {
    return scale(this.post(tokens, slots), 2);
  }

  expertsBackward(rows: number): OpCost {
    return scale(this.experts(rows), 2);
  }

  /** The input-gradient half of `expertsBackward` (experts_dgrad). */
  expertsInputGrad(rows: number): OpCost {
    return this.experts(rows);
  }

  /** The weight-gradient half of `expertsBackward` (experts_wgrad). */
  expertsWeightGrad(rows: number): OpCost {
    return this.experts(rows);
  }

  sharedBackward(tokens: number): OpCost {
    return scale(this.shared(tokens), 2);
  }

  routeBackward(tokens: number): OpCost {
    return scale(this.route(tokens), 2);
  }

  grads(tokens: number): OpCost {
    return this.begin(tokens);
  }

  /** Parameters this rank's optimizer updates. */
  updatedParams(): number {
    const { hiddenSize: H, routedExperts: E, sharedExperts, vocabSize: V } = this.model;
    const perLayer = this.attentionParams() + H * E + sharedExperts * this.expertParams() + this.localExperts * this.expertParams() + 2 * H;
    return this.options.layers * perLayer + 2 * V * H + H;
  }

  update(): OpCost {
    return { flops: {}, bytes: (ADAMW_BYTES_PER_PARAM * this.updatedParams()) / (this.options.accumulationSteps ?? 1) };
  }
}

export interface StepEstimateOptions {
  costs: CostModel;
  /** Tokens per rank in a step. */
  tokens: number;
  /** The real model's top-k. */
  topK: number;
  /** Ranks per modeled node. */
  nodeSize: number;
  /**
   * Micro-batches per layer (1 = naive): experts are modeled per chunk, and each all-to-all as
   * `chunks` back-to-back exchanges of a chunk's rows (each pays the latency, as the schedule
   * chains them).
   */
  chunks?: number;
  /** Bytes per value on the wire of the dispatch and of the combine/backward all-to-alls (f32: 4). */
  dispatchBytesPerValue?: number;
  combineBytesPerValue?: number;
}

export interface StepEstimate {
  /** Sum of every compute op of a step, ms (dilated, scaled). */
  computeMs: number;
  /** Of which the MoE part the overlapped schedule can hide comm behind: shared + experts, fwd + bwd. */
  moeComputeMs: number;
  /** Sum of the four all-to-alls of every layer (all chunks) on otherwise idle links, ms (dilated). */
  commMs: number;
}

/**
 * A step's modeled compute and all-to-all time on one rank under uniform routing (every rank
 * sends S*(W-1)/W rows per all-to-all, spread evenly over its peers; ports per link class run
 * concurrently). Used to pick `computeScale` for a wanted compute-to-communication ratio.
 */
export function estimateStep(o: StepEstimateOptions): StepEstimate {
  const c = o.costs;
  const W = c.options.worldSize;
  const L = c.options.layers;
  const T = o.tokens;
  const S = T * o.topK;
  const chunks = o.chunks ?? 1;
  const H = c.model.hiddenSize;
  const rowsPerChunk = S / chunks;
  let moe = 0;
  for (let ch = 0; ch < chunks; ch++) moe += c.ms(c.experts(rowsPerChunk)) + c.ms(c.expertsBackward(rowsPerChunk));
  moe += c.ms(c.shared(T)) + c.ms(c.sharedBackward(T));
  const perLayerOther =
    c.ms(c.route(T)) + c.ms(c.post(T, S)) + c.ms(c.postBackward(T, S)) + c.ms(c.routeBackward(T));
  const computeMs = L * (moe + perLayerOther) + c.ms(c.begin(T)) + c.ms(c.loss(T)) + c.ms(c.grads(T)) + c.ms(c.update());

  const dilation = c.options.dilation ?? 1;
  const node = Math.min(o.nodeSize, W);
  const intraPeers = node - 1;
  const interPeers = W - node;
  const allToAllMs = (bytesPerValue: number) => {
    const perPeer = (S / W / chunks) * H * bytesPerValue;
    const cls = (peers: number, spec: { bandwidthGBps: number; latencyUs: number }) =>
      peers > 0 ? (spec.latencyUs / 1e3 + (peers * perPeer) / (spec.bandwidthGBps * 1e6)) * dilation : 0;
    return chunks * Math.max(cls(intraPeers, c.profile.intra), cls(interPeers, c.profile.inter));
  };
  const commMs = L * (allToAllMs(o.dispatchBytesPerValue ?? 4) + 3 * allToAllMs(o.combineBytesPerValue ?? 4));
  return { computeMs, moeComputeMs: L * moe, commMs };
}

/**
 * The `computeScale` that makes a step's modeled compute `ratio` times its all-to-all time.
 * `basis`: `all` compares every compute op of the step; `moe` only the shared and routed experts
 * (forward and backward), the compute the overlapped schedule can hide communication behind.
 * `estimate` must come from a CostModel built with computeScale 1 (the default).
 */
export function computeScaleForRatio(ratio: number, estimate: StepEstimate, basis: 'all' | 'moe' = 'all'): number {
  return (ratio * estimate.commMs) / (basis === 'moe' ? estimate.moeComputeMs : estimate.computeMs);
}
