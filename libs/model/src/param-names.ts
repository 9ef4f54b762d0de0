/**
 * The one definition of how parameters are named and shaped. Every other place (the cpu
 * backend, the parity check, checkpoints, the worker's LoadShard checks) asks these functions,
 * so a name written here is the name on the wire, in a checkpoint and in a parity report.
 *
 *   "embedding" [V, H]; per layer l: "layers.l.norm" [H], "layers.l.router" [H, E],
 *   "layers.l.router_bias" [E] (not trainable), "layers.l.shared.s.<w>" per shared expert s;
 *   "final_norm" [H], "head" [H, V]; routed experts "layers.l.experts.e.<w>";
 *   expert weights <w>: "w1" [H, F], "w3" [H, F], "w2" [F, H], in that order.
 */
import type { ModelConfig } from './config';
import type { ExpertParams, LayerParams, ModelParams } from './params';
import type { Tensor } from './tensor';

/** The weights of one SwiGLU expert, in their stable order. */
export const EXPERT_WEIGHTS = ['w1', 'w3', 'w2'] as const;
export type ExpertWeight = (typeof EXPERT_WEIGHTS)[number];

/** The dense part of a model: what every rank holds (a replica). */
export type DenseModelParams = Pick<ModelParams, 'embedding' | 'layers' | 'finalNorm' | 'head'>;

export const EMBEDDING = 'embedding';
export const FINAL_NORM = 'final_norm';
export const HEAD = 'head';

/** The per-layer dense tensors by their name's last part. */
const LAYER_TENSORS = { norm: 'norm', router: 'router', routerBias: 'router_bias' } as const;

/** "layers.<l>.norm" / ".router" / ".router_bias". */
export function layerParamName(layer: number, tensor: keyof typeof LAYER_TENSORS): string {
  return `layers.${layer}.${LAYER_TENSORS[tensor]}`;
}

/** "layers.<l>.shared.<s>.<w>". */
export function sharedParamName(layer: number, shared: number, weight: ExpertWeight): string {
  return `layers.${layer}.shared.${shared}.${weight}`;
}

/** "layers.<l>.experts.<e>.<w>": a routed expert's weight, by its global expert id. */
export function expertParamName(layer: number, expert: number, weight: string): string {
  return `layers.${layer}.experts.${expert}.${weight}`;
}

const EXPERT_NAME = /^layers\.(\d+)\.experts\.(\d+)\.(w1|w3|w2)$/;

/** The layer, expert and weight a routed expert's name names; undefined for any other name. */
export function parseExpertParamName(name: string): { layer: number; expert: number; weight: ExpertWeight } | undefined {
  const m = EXPERT_NAME.exec(name);
  return m ? { layer: Number(m[1]), expert: Number(m[2]), weight: m[3] as ExpertWeight } : undefined;
}

/** Whether `name` is a router bias: a parameter that gradients do not move. */
export const isRouterBias = (name: string) => name.endsWith(`.${LAYER_TENSORS.routerBias}`);

/** The shapes of one expert's weights: w1, w3 [H, F]; w2 [F, H]. */
export function expertShapes(model: Pick<ModelConfig, 'hiddenSize' | 'expertFfnSize'>): Record<ExpertWeight, number[]> {
  const { hiddenSize: H, expertFfnSize: F } = model;
  return { w1: [H, F], w3: [H, F], w2: [F, H] };
}

/** An expert from `tensor(weight, shape)`, one call per weight in stable order. */
export function expertFrom(model: Pick<ModelConfig, 'hiddenSize' | 'expertFfnSize'>, tensor: (weight: ExpertWeight, shape: number[]) => Tensor): ExpertParams {
  const shapes = expertShapes(model);
  const [w1, w3, w2] = EXPERT_WEIGHTS.map((w) => tensor(w, shapes[w]));
  return { w1: w1!, w3: w3!, w2: w2! };
}

/**
 * The dense parameters of `model`, each tensor from `tensor(name, shape)`, called in
 * `denseParams` order: the inverse of `denseParams` (e.g. from a name-to-tensor map).
 */
export function denseFrom(model: ModelConfig, tensor: (name: string, shape: number[]) => Tensor): DenseModelParams {
  const { vocabSize: V, hiddenSize: H, routedExperts: E } = model;
  const embedding = tensor(EMBEDDING, [V, H]);
  const layers: LayerParams[] = Array.from({ length: model.layers }, (_, l) => ({
    norm: tensor(layerParamName(l, 'norm'), [H]),
    router: tensor(layerParamName(l, 'router'), [H, E]),
    routerBias: tensor(layerParamName(l, 'routerBias'), [E]),
    shared: Array.from({ length: model.sharedExperts }, (_, s) => expertFrom(model, (w, shape) => tensor(sharedParamName(l, s, w), shape))),
  }));
  return { embedding, layers, finalNorm: tensor(FINAL_NORM, [H]), head: tensor(HEAD, [H, V]) };
}

/** The shape of every dense parameter of `model`, by name, in `denseParams` order. */
export function denseShapes(model: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  denseFrom(model, (name, shape) => {
    shapes.set(name, shape);
    return { shape, data: new Float32Array(0) };
  });
  return shapes;
}
