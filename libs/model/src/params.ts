/**
 * The model's parameters, their deterministic initialization, and their stable names.
 * Shapes (V vocab, H hidden, F expert FFN, E routed experts):
 *   embedding [V, H]; per layer: norm [H], router [H, E], routerBias [E], shared experts;
 *   experts[layer][e]: w1 [H, F], w3 [H, F], w2 [F, H]; finalNorm [H]; head [H, V].
 */
import type { ModelConfig } from './config';
import { EMBEDDING, EXPERT_WEIGHTS, expertParamName, FINAL_NORM, HEAD, layerParamName, sharedParamName, type DenseModelParams, type ExpertWeight } from './param-names';
import { Rng } from './rng';
import { zeros, type Tensor } from './tensor';

export { checksumTensors } from './checksum';

/** One SwiGLU FFN: y = (silu(x·w1) ⊙ (x·w3))·w2. */
export interface ExpertParams {
  /** [H, F] gate projection. */
  w1: Tensor;
  /** [H, F] up projection. */
  w3: Tensor;
  /** [F, H] down projection. */
  w2: Tensor;
}

export interface LayerParams {
  /** [H] RMSNorm gain before the MoE block. */
  norm: Tensor;
  /** [H, E] router weights. */
  router: Tensor;
  /** [E] selection bias: not trained by gradients; moved by bias balancing. */
  routerBias: Tensor;
  /** sharedExperts shared experts, applied to every token. */
  shared: ExpertParams[];
}

export interface ModelParams {
  /** [V, H]. */
  embedding: Tensor;
  layers: LayerParams[];
  /** [layer][expert] routed experts. */
  experts: ExpertParams[][];
  /** [H] RMSNorm gain before the head. */
  finalNorm: Tensor;
  /** [H, V]. */
  head: Tensor;
}

export interface NamedParam {
  name: string;
  tensor: Tensor;
  /** false for tensors that gradients do not move (router_bias). */
  trainable: boolean;
}

/** A [rows, cols] tensor of N(0, std²) values from the stream (seed, name). */
function normalTensor(seed: number, name: string, shape: [number, number], std: number): Tensor {
  const t = zeros(shape);
  const rng = Rng.derive(seed, name);
  for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * std;
  return t;
}

function ones(n: number): Tensor {
  const t = zeros([n]);
  t.data.fill(1);
  return t;
}

/** An expert's weights; `name(w)` names each weight's stream (its parameter name). */
function initExpert(seed: number, name: (w: ExpertWeight) => string, H: number, F: number, layers: number): ExpertParams {
  return {
    w1: normalTensor(seed, name('w1'), [H, F], 1 / Math.sqrt(H)),
    w3: normalTensor(seed, name('w3'), [H, F], 1 / Math.sqrt(H)),
    // Residual branches start small so the stream stays near unit scale with depth.
    w2: normalTensor(seed, name('w2'), [F, H], 1 / Math.sqrt(F * 2 * layers)),
  };
}

/**
 * Fresh parameters for `config`, deterministic from config.seed. Each tensor is drawn from its
 * own stream named like its parameter (so changing one count leaves the other tensors alone):
 * embedding N(0, 1); router N(0, 1/H); w1, w3 N(0, 1/H); w2 N(0, 1/(2·F·layers)); head N(0, 1/H);
 * norm gains 1; router bias 0.
 */
export function initParams(config: ModelConfig): ModelParams {
  const { vocabSize: V, hiddenSize: H, expertFfnSize: F, routedExperts: E, seed } = config;
  const layers: LayerParams[] = [];
  const experts: ExpertParams[][] = [];
  for (let l = 0; l < config.layers; l++) {
    layers.push({
      norm: ones(H),
      router: normalTensor(seed, layerParamName(l, 'router'), [H, E], 1 / Math.sqrt(H)),
      routerBias: zeros([E]),
      shared: Array.from({ length: config.sharedExperts }, (_, s) => initExpert(seed, (w) => sharedParamName(l, s, w), H, F, config.layers)),
    });
    experts.push(Array.from({ length: E }, (_, e) => initExpert(seed, (w) => expertParamName(l, e, w), H, F, config.layers)));
  }
  return {
    embedding: normalTensor(seed, EMBEDDING, [V, H], 1),
    layers,
    experts,
    finalNorm: ones(H),
    head: normalTensor(seed, HEAD, [H, V], 1 / Math.sqrt(H)),
  };
}

/** The three tensors of an expert, named "w1", "w3", "w2" in that order. */
export function expertParams(e: ExpertParams): NamedParam[] {
  return EXPERT_WEIGHTS.map((w) => ({ name: w, tensor: e[w], trainable: true }));
}

/**
 * Every parameter except the routed experts, in a stable order with stable names (see
 * param-names.ts): "embedding"; per layer l: "layers.l.norm", "layers.l.router",
 * "layers.l.router_bias" (trainable: false), "layers.l.shared.s.w1" / ".w3" / ".w2" per shared
 * expert s; then "final_norm", "head". The tensors are the params' own (not copies).
 */
export function denseParams(p: DenseModelParams): NamedParam[] {
  const out: NamedParam[] = [{ name: EMBEDDING, tensor: p.embedding, trainable: true }];
  p.layers.forEach((layer, l) => {
    out.push(
      { name: layerParamName(l, 'norm'), tensor: layer.norm, trainable: true },
      { name: layerParamName(l, 'router'), tensor: layer.router, trainable: true },
      { name: layerParamName(l, 'routerBias'), tensor: layer.routerBias, trainable: false },
    );
    layer.shared.forEach((shared, s) => {
      for (const w of EXPERT_WEIGHTS) out.push({ name: sharedParamName(l, s, w), tensor: shared[w], trainable: true });
    });
  });
  out.push({ name: FINAL_NORM, tensor: p.finalNorm, trainable: true }, { name: HEAD, tensor: p.head, trainable: true });
  return out;
}

/**
 * Every routed expert's tensors, named "layers.l.experts.e.w1" / ".w3" / ".w2", layer by layer,
 * experts in ascending id.
 */
export function routedExpertParams(p: Pick<ModelParams, 'experts'>): NamedParam[] {
  const out: NamedParam[] = [];
  p.experts.forEach((layer, l) =>
    layer.forEach((e, id) => {
      for (const w of EXPERT_WEIGHTS) out.push({ name: expertParamName(l, id, w), tensor: e[w], trainable: true });
    }),
  );
  return out;
}

/** Every parameter of a model by name: dense ones, then routed experts layer by layer. Tensors are not copied. */
export function namedParams(params: ModelParams): Map<string, Tensor> {
  return new Map([...denseParams(params), ...routedExpertParams(params)].map((p) => [p.name, p.tensor]));
}

/** A deep copy of `p`. */
export function cloneParams(p: ModelParams): ModelParams {
  const c = (t: Tensor): Tensor => ({ shape: [...t.shape], data: new Float32Array(t.data) });
  const ce = (e: ExpertParams): ExpertParams => ({ w1: c(e.w1), w3: c(e.w3), w2: c(e.w2) });
  return {
    embedding: c(p.embedding),
    layers: p.layers.map((l) => ({ norm: c(l.norm), router: c(l.router), routerBias: c(l.routerBias), shared: l.shared.map(ce) })),
    experts: p.experts.map((layer) => layer.map(ce)),
    finalNorm: c(p.finalNorm),
    head: c(p.head),
  };
}

/** Parameters of the same structure and shapes as `p`, all zero (e.g. a gradient accumulator). */
export function zerosLikeParams(p: ModelParams): ModelParams {
  const z = (t: Tensor): Tensor => zeros(t.shape);
  const ze = (e: ExpertParams): ExpertParams => ({ w1: z(e.w1), w3: z(e.w3), w2: z(e.w2) });
  return {
    embedding: z(p.embedding),
    layers: p.layers.map((l) => ({ norm: z(l.norm), router: z(l.router), routerBias: z(l.routerBias), shared: l.shared.map(ze) })),
    experts: p.experts.map((layer) => layer.map(ze)),
    finalNorm: z(p.finalNorm),
    head: z(p.head),
  };
}
