import { describe, expect, it } from 'vitest';
import { expandPlan, PIPELINE_SCHEDULE_NAMES, pipelineSchedule, planMemory, splitLayers, type PipelinePlan } from '../src';

// DeepSeek-V3 Table 2 / the DualPipe README: parameters and activations per device, in stages
// and micro-batches (PP counted in pipeline stages).
const MEMORY: Record<string, { parameters: number; activations: (PP: number) => number }> = {
  '1f1b': { parameters: 1, activations: (PP) => PP },
  zb1p: { parameters: 1, activations: (PP) => PP },
  dualpipe: { parameters: 2, activations: (PP) => PP + 1 },
  dualpipev: { parameters: 2, activations: (PP) => PP + 1 },
};

const build = (name: string, PP: number, M: number): PipelinePlan => {
  const s = pipelineSchedule(name);
  return s.build(s.ranksFor(PP), M);
};

describe('pipeline plans', () => {
  for (const name of PIPELINE_SCHEDULE_NAMES) {
    for (const PP of [4, 8, 16]) {
      for (const M of [2 * PP, 20]) {
        if (name === 'dualpipe' && M < 2 * PP) continue;
        it(`${name} PP ${PP} M ${M}: every chunk runs F once and B once, W once per deferred B, and the memory of Table 2`, () => {
          const plan = build(name, PP, M);
          const seen = new Map<string, number>();
          const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
          let deferred = 0;
          for (const units of plan.units) {
            for (const u of units) {
              if (u.kind === 'F') count(`F${u.chunk.microBatch}.${u.chunk.stage}`);
              if (u.kind === 'B') count(`B${u.chunk.microBatch}.${u.chunk.stage}`);
              if (u.kind === 'B' && u.deferWeights) deferred++;
              if (u.kind === 'W') count(`W${u.chunk.microBatch}.${u.chunk.stage}`), deferred--;
              if (u.kind === 'FB') count(`F${u.forward.microBatch}.${u.forward.stage}`), count(`B${u.backward.microBatch}.${u.backward.stage}`);
            }
          }
          expect(deferred).toBe(0);
          for (let m = 0; m < M; m++) {
            for (let s = 0; s < plan.stages; s++) {
              expect(seen.get(`F${m}.${s}`)).toBe(1);
              expect(seen.get(`B${m}.${s}`)).toBe(1);
            }
          }
          const memory = planMemory(plan);
          expect(Math.max(...memory.parameters)).toBe(MEMORY[name]!.parameters);
          expect(Math.max(...memory.activations)).toBe(MEMORY[name]!.activations(PP));
        });
      }
    }
  }

  it('DualPipe holds two stages a rank, one of each direction (stage r and PP-1-r)', () => {
    const plan = build('dualpipe', 8, 16);
    plan.units.forEach((units, rank) => {
      const stages = new Set(units.flatMap((u) => (u.kind === 'F' ? [u.chunk.stage] : u.kind === 'FB' ? [u.forward.stage] : [])));
      expect([...stages].sort((a, b) => a - b)).toEqual([Math.min(rank, 7 - rank), Math.max(rank, 7 - rank)]);
    });
  });

  it('expansion: every MoE layer of every chunk has its four all-to-alls, and a send for every stage boundary between ranks', () => {
    const plan = build('dualpipe', 4, 8);
    const lists = expandPlan(plan, splitLayers(8, 4, 1));
    const all = lists.flat();
    const count = (kind: string) => all.filter((o) => o.kind === kind).length;
    // 8 micro-batches x 7 MoE layers (layer 0 dense)
    for (const kind of ['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd']) expect(count(kind)).toBe(8 * 7);
    // Each micro-batch crosses 3 stage boundaries forward and 3 backward.
    expect(count('send_fwd')).toBe(8 * 3);
    expect(count('send_bwd')).toBe(8 * 3);
    for (const ops of lists) for (const op of ops) for (const d of op.deps) expect(d).toBeLessThan(ops.length);
  });

  it('DualPipeV turns micro-batches around on the last rank without a send', () => {
    const plan = build('dualpipev', 8, 16);
    const lists = expandPlan(plan, splitLayers(16, 8));
    // 16 micro-batches x 7 boundaries between ranks (8 stages, the middle boundary is local), each way.
    expect(lists.flat().filter((o) => o.kind === 'send_fwd').length).toBe(16 * 6);
  });
});
