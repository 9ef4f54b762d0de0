import { describe, expect, it } from 'vitest';
import {
  allReduceSum,
  allToAllStrategy,
  combine,
  decodeRows,
  dispatch,
  dispatchLayout,
  encodeRows,
  exchange,
  ExchangeTimeoutError,
  type CodecName,
  type FrameKey,
  type Transport,
} from '../../src/index';

const WORLD = 4;
const HIDDEN = 8;
const TOP_K = 2;
const EXPERTS = 8;
/** Experts 0,1 on rank 0, 2,3 on rank 1, ... */
const OWNER = Array.from({ length: EXPERTS }, (_, e) => Math.floor(e / 2));

/** Token rows of `rank`: [tokens, HIDDEN], value = rank * 1000 + token + col / 16. */
function tokenRows(rank: number, tokens: number): Float32Array {
  return Float32Array.from({ length: tokens * HIDDEN }, (_, i) => rank * 1000 + Math.floor(i / HIDDEN) + (i % HIDDEN) / 16);
}

/** Expert ids [tokens * TOP_K] of `rank`: deterministic, two distinct experts per token, some -1 (dropped). */
function routing(rank: number, tokens: number): Int32Array {
  const ids = new Int32Array(tokens * TOP_K);
  for (let t = 0; t < tokens; t++) {
    ids[t * TOP_K] = (t * 3 + rank) % EXPERTS;
    ids[t * TOP_K + 1] = (t + rank) % 5 === 4 ? -1 : (t * 3 + rank + 1 + (t % 3)) % EXPERTS;
  }
  return ids;
}

/** What an "expert" does to a row in these tests: scale by (expert + 1). */
const expertOf = (rows: Float32Array, ids: Int32Array): Float32Array =>
  rows.map((v, i) => v * (ids[Math.floor(i / HIDDEN)]! + 1));

interface RankResult {
  out: Float32Array;
  ids: Int32Array;
  source: Float32Array;
}

/** Forward dispatch -> expert -> combine on every rank; returns each rank's combined [S, HIDDEN]. */
async function forward(
  transports: Transport[],
  step: number,
  tokensOf: (rank: number) => number,
  codec: CodecName,
  chunks = 1,
): Promise<RankResult[]> {
  return Promise.all(
    transports.map(async (t) => {
      const tokens = tokensOf(t.rank);
      const source = tokenRows(t.rank, tokens);
      const ids = routing(t.rank, tokens);
      const out = new Float32Array(ids.length * HIDDEN).fill(-7);
      for (let c = 0; c < chunks; c++) {
        const begin = Math.floor((c * tokens) / chunks) * TOP_K;
        const end = Math.floor(((c + 1) * tokens) / chunks) * TOP_K;
        const layout = dispatchLayout(ids, OWNER, WORLD, { begin, end });
        const key: FrameKey = { step, layer: 1, chunk: c, phase: 'DISPATCH' };
        const { received, handle } = await dispatch(t, key, layout, source, HIDDEN, {
          rowOfSlot: (slot) => Math.floor(slot / TOP_K),
          expertIds: ids,
          codec,
          timeoutMs: 10_000,
        });
        for (const r of received) for (const e of r.expertIds) expect(OWNER[e]).toBe(t.rank);
        const outputs = received.map((r) => expertOf(r.rows, r.expertIds));
        await combine(t, { ...key, phase: 'COMBINE' }, handle, outputs, { codec, timeoutMs: 10_000, into: out });
      }
      return { out, ids, source };
    }),
  );
}

/** Checks rank results: slot s holds row(s / k) * (expert + 1), -7 where the slot was dropped. */
function expectCombined(results: RankResult[], tolerance: number): void {
  for (const { out, ids, source } of results) {
    for (let s = 0; s < ids.length; s++) {
      const token = Math.floor(s / TOP_K);
      for (let c = 0; c < HIDDEN; c++) {
        const got = out[s * HIDDEN + c]!;
        if (ids[s] === -1) expect(got).toBe(-7);
        else {
          const want = source[token * HIDDEN + c]! * (ids[s]! + 1);
          expect(Math.abs(got - want)).toBeLessThanOrEqual(Math.abs(want) * tolerance);
        }
      }
    }
  }
}

/**
 * The all-to-all specification, run against any transport: `make` builds a fresh 4-rank world
 * and `teardown` closes it.
 */
export function allToAllSpec(name: string, make: () => Promise<Transport[]>, teardown: (t: Transport[]) => Promise<void>): void {
  describe(`all-to-all over ${name}`, () => {
    const withWorld = async (body: (t: Transport[]) => Promise<void>): Promise<void> => {
      const transports = await make();
      try {
        await body(transports);
      } finally {
        await teardown(transports);
      }
    };

    it('exchange delivers one frame from every rank, by source, and never sends a rank its own frame', () =>
      withWorld(async (transports) => {
        const key: FrameKey = { step: 0, layer: -1, chunk: 0, phase: 'ALLREDUCE' };
        const results = await Promise.all(
          transports.map((t) =>
            exchange(
              t,
              key,
              transports.map((_, dest) => ({ payload: encodeRows(Float32Array.of(t.rank * 10 + dest), 1, 1, 'f32') })),
              10_000,
            ),
          ),
        );
        results.forEach((frames, rank) => {
          expect(frames.map((f) => f.source)).toEqual([0, 1, 2, 3]);
          expect(frames.map((f) => decodeRows(f.payload)[0])).toEqual([0, 1, 2, 3].map((s) => s * 10 + rank));
        });
        for (const t of transports) expect(t.bytesSent()).toBe(3 * 4);
      }));

    it('dispatch then combine returns every slot its expert output, for each codec', () =>
      withWorld(async (transports) => {
        expectCombined(await forward(transports, 1, (r) => 12 + r, 'f32'), 0);
        expectCombined(await forward(transports, 2, (r) => 12 + r, 'bf16'), 2 ** -7);
        expectCombined(await forward(transports, 3, (r) => 12 + r, 'fp8'), 2 ** -3);
      }));

    it('received rows keep the sender slot order, sources in rank order, with their expert ids', () =>
      withWorld(async (transports) => {
        const all = await Promise.all(
          transports.map(async (t) => {
            const ids = routing(t.rank, 10);
            const layout = dispatchLayout(ids, OWNER, WORLD);
            return dispatch(t, { step: 4, layer: 0, chunk: 0, phase: 'DISPATCH' }, layout, tokenRows(t.rank, 10), HIDDEN, {
              rowOfSlot: (s) => Math.floor(s / TOP_K),
              expertIds: ids,
              codec: 'f32',
              timeoutMs: 10_000,
            });
          }),
        );
        all.forEach(({ received, handle }, rank) => {
          expect(received.map((r) => r.source)).toEqual([0, 1, 2, 3]);
          received.forEach((r, src) => {
            const srcIds = routing(src, 10);
            const slots = dispatchLayout(srcIds, OWNER, WORLD).slotsTo[rank]!;
            expect(r.count).toBe(slots.length);
            expect(handle.received[src]).toBe(slots.length);
            expect(Array.from(r.expertIds)).toEqual(Array.from(slots, (s) => srcIds[s]));
            const want = tokenRows(src, 10);
            slots.forEach((s, i) => {
              const token = Math.floor(s / TOP_K);
              expect(Array.from(r.rows.subarray(i * HIDDEN, (i + 1) * HIDDEN))).toEqual(Array.from(want.subarray(token * HIDDEN, (token + 1) * HIDDEN)));
            });
          });
        });
      }));

    it('a rank with zero tokens for everyone still sends empty frames, and nobody hangs', () =>
      withWorld(async (transports) => {
        expectCombined(await forward(transports, 5, (r) => (r === 2 ? 0 : 9), 'bf16'), 2 ** -7);
      }));

    it('chunked dispatches fill one output chunk by chunk, leaving other slots untouched', () =>
      withWorld(async (transports) => {
        expectCombined(await forward(transports, 6, () => 11, 'f32', 3), 0);
      }));

    it('the backward reuses dispatch and combine: gradients per slot out and back', () =>
      withWorld(async (transports) => {
        await Promise.all(
          transports.map(async (t) => {
            const tokens = 7;
            const ids = routing(t.rank, tokens);
            const layout = dispatchLayout(ids, OWNER, WORLD);
            const slotGrads = Float32Array.from({ length: ids.length * HIDDEN }, (_, i) => t.rank + i / 100);
            const { received, handle } = await dispatch(t, { step: 7, layer: 0, chunk: 0, phase: 'COMBINE_BACKWARD' }, layout, slotGrads, HIDDEN, {
              rowOfSlot: (slot) => slot,
              expertIds: ids,
              codec: 'f32',
              timeoutMs: 10_000,
            });
            const back = await combine(t, { step: 7, layer: 0, chunk: 0, phase: 'DISPATCH_BACKWARD' }, handle, received.map((r) => expertOf(r.rows, r.expertIds)), {
              codec: 'f32',
              timeoutMs: 10_000,
            });
            for (let s = 0; s < ids.length; s++) {
              for (let c = 0; c < HIDDEN; c++) {
                const want = ids[s] === -1 ? 0 : slotGrads[s * HIDDEN + c]! * (ids[s]! + 1);
                expect(back[s * HIDDEN + c]).toBeCloseTo(want, 4);
              }
            }
          }),
        );
      }));

    it('the hierarchical all-to-all (2 nodes of 2) carries the combine weights out and their gradients back, exact beside rows of any codec', () =>
      withWorld(async (transports) => {
        for (const [step, codec, tolerance] of [[20, 'f32', 1e-6], [21, 'bf16', 2 ** -6]] as const) {
          await Promise.all(
            transports.map(async (t) => {
              const tokens = 6 + t.rank;
              const ids = routing(t.rank, tokens);
              const weights = Float32Array.from(ids, (_, s) => 1 / (s + 3));
              const source = tokenRows(t.rank, tokens);
              // dL/dy: quarters, exact in bf16.
              const g = Float32Array.from({ length: tokens * HIDDEN }, (_, i) => ((i % 5) - 2) / 4);
              const a2a = allToAllStrategy('hierarchical', OWNER, WORLD, 2);
              const key: FrameKey = { step, layer: 0, chunk: 0, phase: 'DISPATCH' };
              const opts = { codec, timeoutMs: 10_000 };
              const d = await a2a.dispatch(t, key, dispatchLayout(ids, OWNER, WORLD), source, HIDDEN, { ...opts, rowOfSlot: (s) => Math.floor(s / TOP_K), expertIds: ids, weights });
              const c = await a2a.combine(t, { ...key, phase: 'COMBINE' }, d.handle, d.received.map((r) => expertOf(r.rows, r.expertIds)), opts);
              const cb = await a2a.combineBackward(t, { ...key, phase: 'COMBINE_BACKWARD' }, d.handle, g, { ...opts, expertIds: ids });
              const dWeights = new Float32Array(ids.length).fill(-7);
              // Experts whose input gradient is their output gradient: dL/dh[t] = Σ_s w_s · g[t].
              const db = await a2a.dispatchBackward(t, { ...key, phase: 'DISPATCH_BACKWARD' }, cb.handle, cb.received.map((r) => r.rows), { ...opts, dWeightsInto: dWeights });
              for (let token = 0; token < tokens; token++) {
                const slots = [0, 1].map((j) => token * TOP_K + j).filter((s) => ids[s] !== -1);
                for (let col = 0; col < HIDDEN; col++) {
                  const i = token * HIDDEN + col;
                  const terms = slots.map((s) => weights[s]! * source[i]! * (ids[s]! + 1));
                  const scale = terms.reduce((a, b) => a + Math.abs(b), 0);
                  expect(Math.abs(c.out[i]! - terms.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(scale * tolerance);
                  const dTerms = slots.map((s) => weights[s]! * g[i]!);
                  expect(Math.abs(db.out[i]! - dTerms.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(dTerms.reduce((a, b) => a + Math.abs(b), 0) * tolerance);
                }
                for (let j = 0; j < TOP_K; j++) {
                  const s = token * TOP_K + j;
                  if (ids[s] === -1) {
                    expect(dWeights[s]).toBe(-7);
                    continue;
                  }
                  const products = Array.from({ length: HIDDEN }, (_, col) => source[token * HIDDEN + col]! * (ids[s]! + 1) * g[token * HIDDEN + col]!);
                  const want = products.reduce((a, b) => a + b, 0);
                  expect(Math.abs(dWeights[s]! - want)).toBeLessThanOrEqual(products.reduce((a, b) => a + Math.abs(b), 0) * tolerance);
                }
              }
            }),
          );
        }
      }));

    it('allReduceSum gives every rank the same bits: segments summed in rank order from 0', () =>
      withWorld(async (transports) => {
        for (const [round, n] of [10, 3, 1001].entries()) {
          const vectors = transports.map((t) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 7 + t.rank) * 10 ** (t.rank - 2) + (i === 0 ? -0 : 0)));
          const results = await Promise.all(transports.map((t) => allReduceSum(t, { step: 8 + round, layer: -1, chunk: 0, phase: 'ALLREDUCE' }, vectors[t.rank]!, 10_000)));
          const want = new Float32Array(n);
          for (const v of vectors) for (let i = 0; i < n; i++) want[i]! += v[i]!;
          for (const r of results) expect(Buffer.from(r.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        }
      }));

    it('a rank that never sends makes the others fail with ExchangeTimeoutError naming it', () =>
      withWorld(async (transports) => {
        const key: FrameKey = { step: 3, layer: 1, chunk: 0, phase: 'DISPATCH' };
        const frames = () => transports.map(() => ({ payload: encodeRows(new Float32Array(0), 0, HIDDEN, 'f32') }));
        // 2 s, not less: the three live ranks' frames must all arrive inside the wait, or a busy
        // machine makes the error name them as missing too (it did at 300 ms under load 30-60).
        const started = performance.now();
        const outcomes = await Promise.allSettled(transports.slice(0, 3).map((t) => exchange(t, key, frames(), 2_000)));
        expect(performance.now() - started).toBeLessThan(10_000);
        for (const o of outcomes) {
          expect(o.status).toBe('rejected');
          const error = (o as PromiseRejectedResult).reason as ExchangeTimeoutError;
          expect(error).toBeInstanceOf(ExchangeTimeoutError);
          expect(error.missing).toEqual([3]);
          expect(error.key).toEqual(key);
        }
        expect((outcomes[0] as PromiseRejectedResult).reason.message).toBe(
          'timed out after 2000 ms waiting for step 3 layer 1 chunk 0 DISPATCH from rank 3 (rank 0 has 3 of 4)',
        );
      }));
  });
}
