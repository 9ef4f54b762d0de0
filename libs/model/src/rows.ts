/**
 * Moving rows between the token view [T, H], the slot view [T·k, H] and per-expert blocks.
 * An empty row list means "no rows" (an expert that receives nothing gets an [0, H] block).
 */
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

/**
 * expertIds: [S] expert of each slot, each in [0, numExperts) -> [numExperts] lists of the slot
 * indices routed to each expert, ascending. Experts with no slots get an empty list.
 */
export function groupSlotsByExpert(expertIds: Int32Array, numExperts: number): Int32Array[] {
  const counts = new Int32Array(numExperts);
  for (let s = 0; s < expertIds.length; s++) {
    const e = expertIds[s]!;
    if (!(e >= 0 && e < numExperts)) throw new ShapeError(`groupSlotsByExpert: slot ${s} has expert ${e}, expected 0..${numExperts - 1}`);
    counts[e]! += 1;
  }
  const groups = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(numExperts);
  for (let s = 0; s < expertIds.length; s++) {
    const e = expertIds[s]!;
    groups[e]![fill[e]!++] = s;
  }
  return groups;
}

/** x: [N, H], rows: [n] indices in [0, N) (repeats allowed) -> [n, H] with out[i] = x[rows[i]]. */
export function gatherRows(x: Tensor, rows: ArrayLike<number>): Tensor {
  const [N, H] = matrixShape(x, 'gatherRows: x');
  const out = zeros([rows.length, H]);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!(Number.isInteger(r) && r >= 0 && r < N)) throw new ShapeError(`gatherRows: row ${i} is ${r}, x has ${N} rows`);
    out.data.set(x.data.subarray(r * H, (r + 1) * H), i * H);
  }
  return out;
}

/** into: [N, H] (written in place), rows: [n] indices in [0, N), values: [n, H]: into[rows[i]] = values[i]. */
export function scatterRows(into: Tensor, rows: ArrayLike<number>, values: Tensor): void {
  const [N, H] = matrixShape(into, 'scatterRows: into');
  const [n] = matrixShape(values, 'scatterRows: values', H);
  if (n !== rows.length) throw new ShapeError(`scatterRows: ${rows.length} row indices for ${n} value rows`);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    if (!(Number.isInteger(r) && r >= 0 && r < N)) throw new ShapeError(`scatterRows: row ${i} is ${r}, into has ${N} rows`);
    into.data.set(values.data.subarray(i * H, (i + 1) * H), r * H);
  }
}
