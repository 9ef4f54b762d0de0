/**
 * The routed rows of one layer in either form (`RoutedForm`): what the distributed step's combine
 * hands the token's rank, checked and turned into the layer's combined output.
 * Shapes: T tokens, k = top-k, S = T·k slots, H hidden.
 */
import { combine } from '../combine';
import { ShapeError } from '../shape-error';
import type { Tensor } from '../tensor';
import type { RoutedForm, RoutedInputGrads, RoutedRows } from './types';

const tensorOf = (data: Float32Array, cols: number): Tensor => ({ shape: [data.length / cols, cols], data });

/**
 * routed: `slots` [S, H] expert outputs, weighted by `weights` [S] and summed in slot order here;
 * `tokens` [T, H] already combined. Returns combined [T, H], and the slot outputs of a `slots` form
 * (the backward's weight gradients need them).
 */
export function combineRouted(routed: RoutedRows, weights: Float32Array, T: number, topK: number, H: number, what: string): { combined: Tensor; slotOutputs?: Tensor } {
  checkRoutedRows(routed.form, routed.rows, T, topK, H, what);
  if (routed.form === 'tokens') return { combined: tensorOf(routed.rows, H) };
  const slotOutputs = tensorOf(routed.rows, H);
  return { combined: combine(slotOutputs, weights, topK), slotOutputs };
}

/** Throws a ShapeError naming `what` unless rows is [S, H] (`slots`) or [T, H] (`tokens`). */
export function checkRoutedRows(form: RoutedForm, rows: Float32Array, T: number, topK: number, H: number, what: string): void {
  const count = form === 'slots' ? T * topK : T;
  if (rows.length !== count * H) throw new ShapeError(`${what}: ${form} form has ${rows.length} values, expected [${count}, ${H}]`);
}

/**
 * Checks the routed inputs' gradient against the forward's form and returns what the router and
 * norm backward take: the weight gradients [S] (`tokens`: as given; `slots`: the backend's own,
 * `kept`), the rows as a tensor, and how many rows each token sums (k per slot, 1 per token).
 */
export function routedInputGrads(
  grads: RoutedInputGrads,
  forwardForm: RoutedForm,
  kept: Float32Array | undefined,
  T: number,
  topK: number,
  H: number,
  what: string,
): { dWeights: Float32Array; rows: Tensor; rowsPerToken: number } {
  if (grads.form !== forwardForm) throw new ShapeError(`${what}: ${grads.form} form, but the forward combined ${forwardForm}`);
  checkRoutedRows(grads.form, grads.rows, T, topK, H, what);
  const dWeights = grads.form === 'tokens' ? grads.dWeights : kept;
  if (!dWeights || dWeights.length !== T * topK) throw new ShapeError(`${what}: ${dWeights?.length ?? 0} weight gradients for ${T * topK} slots`);
  return { dWeights, rows: tensorOf(grads.rows, H), rowsPerToken: grads.form === 'slots' ? topK : 1 };
}
