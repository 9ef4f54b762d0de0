import { describe, expect, it } from 'vitest';
import {
  createInMemoryTransports,
  decodeRows,
  dispatchLayout,
  DuplicateFrameError,
  encodeRows,
  ExchangeTimeoutError,
  exchange,
  keyString,
  LayoutError,
  ReceiveTimeoutError,
  type FrameKey,
} from '../src/index';
import { allToAllSpec } from './support/alltoall-spec';

allToAllSpec(
  'in-memory transports',
  async () => createInMemoryTransports(4),
  async (transports) => void (await Promise.all(transports.map((t) => t.close()))),
);

const key: FrameKey = { step: 3, layer: 1, chunk: 0, phase: 'DISPATCH' };
const row = (v: number) => ({ payload: encodeRows(Float32Array.of(v), 1, 1, 'f32') });

describe('frame keys', () => {
  it('read as step, layer, chunk and phase', () => {
    expect(keyString(key)).toBe('step 3 layer 1 chunk 0 DISPATCH');
    expect(keyString({ step: 9, layer: -1, chunk: 1, phase: 'ALLREDUCE' })).toBe('step 9 chunk 1 ALLREDUCE');
  });
});

describe('dispatch layout', () => {
  it('lists each rank its slots in ascending order, dropping -1 and slots outside the range', () => {
    const ids = Int32Array.of(0, 3, -1, 1, 2, 0, 3, 3);
    const owner = [0, 0, 1, 1];
    expect(dispatchLayout(ids, owner, 2).slotsTo.map((s) => Array.from(s))).toEqual([[0, 3, 5], [1, 4, 6, 7]]);
    const chunk = dispatchLayout(ids, owner, 3, { begin: 2, end: 6 });
    expect(chunk.slotsTo.map((s) => Array.from(s))).toEqual([[3, 5], [4], []]);
    expect(chunk.slotCount).toBe(8);
  });

  it('names the slot, expert or rank that is out of range', () => {
    expect(() => dispatchLayout(Int32Array.of(0, 9), [0, 1], 2)).toThrow(new LayoutError('slot 1: expert id 9 is outside 0..1 (-1 for none)'));
    expect(() => dispatchLayout(Int32Array.of(0), [0, 5], 2)).toThrow('expert 1 is owned by rank 5, outside 0..1');
    expect(() => dispatchLayout(Int32Array.of(0), [0], 1, { begin: 0, end: 2 })).toThrow('slot range [0, 2) is not within the 1 slots');
  });
});

describe('in-memory transport', () => {
  it('refuses a second frame for the same key from the same source', async () => {
    const [a, b] = createInMemoryTransports(2);
    await a!.send(1, key, row(1));
    await expect(a!.send(1, key, row(2))).rejects.toThrow(DuplicateFrameError);
    await b!.receive(0, key, 100);
    await expect(a!.send(1, key, row(3))).rejects.toThrow('duplicate step 3 layer 1 chunk 0 DISPATCH from rank 0: a frame for this key was already received');
  });

  it('times out a receive, naming the key and the source', async () => {
    const [a] = createInMemoryTransports(2);
    await expect(a!.receive(1, key, 20)).rejects.toThrow(new ReceiveTimeoutError(key, 1, 0, 20));
  });

  it('holds senders back once the receiver holds capacityBytes, until it takes frames', async () => {
    const [a, b] = createInMemoryTransports(2, { capacityBytes: 8 });
    const big = { payload: encodeRows(new Float32Array(2), 1, 2, 'f32') };
    await a!.send(1, { ...key, chunk: 0 }, big);
    let second = false;
    const sending = a!.send(1, { ...key, chunk: 1 }, big).then(() => (second = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false);
    await b!.receive(0, { ...key, chunk: 0 }, 100);
    await sending;
    expect(second).toBe(true);
  });

  it('refuses frames of steps older than the newest taken minus one', async () => {
    const [a, b] = createInMemoryTransports(2);
    for (const step of [1, 2, 3]) {
      await a!.send(1, { ...key, step }, row(step));
      await b!.receive(0, { ...key, step }, 100);
    }
    await a!.send(1, { ...key, step: 2, chunk: 1 }, row(0)); // the step before the newest: still live
    await expect(a!.send(1, { ...key, step: 1, chunk: 1 }, row(0))).rejects.toThrow(
      'stale step 1 layer 1 chunk 1 DISPATCH from rank 0: this rank has taken frames of step 3',
    );
  });

  it('copies the payload on send, as a wire would', async () => {
    const [a, b] = createInMemoryTransports(2);
    const values = Float32Array.of(1, 2);
    await a!.send(1, key, { payload: encodeRows(values, 1, 2, 'f32') });
    values[0] = 99;
    const frame = await b!.receive(0, key, 100);
    expect(Array.from(decodeRows(frame.payload))).toEqual([1, 2]);
  });

  it('reports the ranks still missing when only some frames arrived', async () => {
    const transports = createInMemoryTransports(4);
    await transports[1]!.send(0, key, row(1));
    const error = await exchange(transports[0]!, key, [row(0), row(0), row(0), row(0)], 50).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExchangeTimeoutError);
    expect((error as ExchangeTimeoutError).missing).toEqual([2, 3]);
    expect((error as Error).message).toBe('timed out after 50 ms waiting for step 3 layer 1 chunk 0 DISPATCH from ranks 2, 3 (rank 0 has 2 of 4)');
  });
});
