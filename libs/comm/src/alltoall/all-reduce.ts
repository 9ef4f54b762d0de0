import { decodeRowsShared, encodeRows } from '../codec/rows';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame, Transport } from '../transport/transport';
import { AllToAllShapeError } from './errors';
import { exchange } from './exchange';

/** Segment r of a vector of n values over w ranks: [floor(r n / w), floor((r + 1) n / w)). */
export function segmentOf(r: number, n: number, w: number): { begin: number; end: number } {
  return { begin: Math.floor((r * n) / w), end: Math.floor(((r + 1) * n) / w) };
}

/**
 * Sums `vector` [n] over all ranks; every rank gets a bitwise identical result.
 * Reduce-scatter: rank r sums segment r of every rank's vector in rank order, in float32,
 * starting from 0 (0 + x_0 + x_1 + ... + x_{W-1}); all-gather: every rank collects the segments.
 * The two exchanges use `key` with chunk 2c and 2c + 1 (c = key.chunk); each has `timeoutMs`.
 * @returns [n] the sum (a new array; `vector` is not changed).
 */
export async function allReduceSum(transport: Transport, key: FrameKey, vector: Float32Array, timeoutMs: number): Promise<Float32Array> {
  const { rank, worldSize } = transport;
  const n = vector.length;
  const what = `allReduceSum ${keyString(key)} on rank ${rank}`;
  const segments = Array.from({ length: worldSize }, (_, r) => segmentOf(r, n, worldSize));
  const mine = segments[rank]!;

  const scatter: OutgoingFrame[] = segments.map(({ begin, end }) => ({
    payload: encodeRows(vector.subarray(begin, end), 1, end - begin, 'f32'),
  }));
  const parts = await exchange(transport, { ...key, chunk: 2 * key.chunk }, scatter, timeoutMs);
  const sum = new Float32Array(mine.end - mine.begin);
  for (let source = 0; source < worldSize; source++) {
    const part = source === rank ? vector.subarray(mine.begin, mine.end) : decodeRowsShared(parts[source]!.payload);
    if (part.length !== sum.length) {
      throw new AllToAllShapeError(`${what}: rank ${source} sent ${part.length} values of segment ${rank}, which has ${sum.length}`);
    }
    for (let i = 0; i < sum.length; i++) sum[i]! += part[i]!;
  }

  const gather: OutgoingFrame[] = segments.map(() => ({ payload: encodeRows(sum, 1, sum.length, 'f32') }));
  const sums = await exchange(transport, { ...key, chunk: 2 * key.chunk + 1 }, gather, timeoutMs);
  const result = new Float32Array(n);
  for (let source = 0; source < worldSize; source++) {
    const { begin, end } = segments[source]!;
    const part = source === rank ? sum : decodeRowsShared(sums[source]!.payload);
    if (part.length !== end - begin) {
      throw new AllToAllShapeError(`${what}: rank ${source} sent ${part.length} summed values of its segment, which has ${end - begin}`);
    }
    result.set(part, begin);
  }
  return result;
}
