import { describe, expect, it } from 'vitest';
import { parseModelConfig, TINY_MODEL } from '@moe/model';
import { NO_HOST_COSTS, predictStep, runEngine, stepTasks, type HostCosts, type ProbeStep } from '@moe/sim';
import { benchHostModel } from '../src/run/bench-host';
import { benchStepInput, type BenchStepSettings, type ScheduleRef } from '../src/run/bench-prediction';

const settings: BenchStepSettings = {
  model: parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 4, layers: 2, balancing: 'none' }),
  workers: 4,
  nodeSize: 2,
  profile: 'H800',
  dilation: 1000,
  accumulationSteps: 1,
  latencyScale: 0.01,
  modeled: { hiddenSize: 256, expertFfnSize: 512, routedExperts: 8, vocabSize: 1024, seqLen: 512 },
  tokensPerRank: 512,
  microBatches: 2,
  dispatchCodec: 'bf16',
  combineCodec: 'bf16',
};

/** Three steps of `schedule` as 4 workers would record them on `host` (the simulator's own timings). */
function probeOn(schedule: ScheduleRef, host: HostCosts): { schedule: ScheduleRef; steps: ProbeStep[] } {
  const input = benchStepInput(settings, schedule, 1);
  const modeled = stepTasks(input).tasks.map((t) => t.ms);
  const r = runEngine(stepTasks({ ...input, host }).tasks, { devices: 1 });
  const records = input.ops.map((op) => ({ name: op.kind, stream: op.stream, layer: op.layer, chunk: op.chunk, microBatch: op.microBatch, startMs: r.start[op.id]!, endMs: r.end[op.id]!, ...(op.stream === 'compute' ? { modeledMs: modeled[op.id]! } : {}) }));
  const step = { stepMs: r.makespanMs + host.stepMs, timelines: [records, records, records, records] };
  return { schedule, steps: [step, step, step] };
}

const naive = { schedule: 'naive', chunks: 1 };
const overlapped = { schedule: 'overlapped', chunks: 2 };
const calm: HostCosts = { ...NO_HOST_COSTS, computeLaunchMs: 1, computeOpMs: 0.3, allToAllMs: 10, allReduceMs: 5, stepMs: 20 };

describe('the host under a bench row', () => {
  it('is measured on the probes of the row\'s own schedule and chunks, and named with its source in the record', () => {
    const model = benchHostModel(settings, [], new Map([[1, [probeOn(naive, calm), probeOn(overlapped, { ...calm, allToAllMs: 25 })]]]), null);
    // a naive step's all-to-alls never overlap: its term as host work is the latency it measured
    expect(model.of(naive)!.allToAllWorkMs).toBeCloseTo(10, 4);
    expect(model.of(naive)!.allToAllMs).toBe(0);
    // an overlapped step's all-to-alls queue on their links behind each other: that wait is the model's, so only those that left alone measure the host
    expect(model.record).toMatchObject({ host_by_schedule: { 'overlapped C2': { all_to_all_ms: 25 } } });
    // and as work, sized to replay the probe
    const probe = probeOn(overlapped, { ...calm, allToAllMs: 25 });
    expect(predictStep({ ...benchStepInput(settings, overlapped, 1), host: model.of(overlapped)! }).stepMs).toBeCloseTo(probe.steps[0]!.stepMs, 4);
    expect(model.of({ schedule: 'overlapped', chunks: 4 })).toBeUndefined();
    expect(model.record).toMatchObject({ per_byte_ms: { value: 0, source: expect.stringMatching(/^not measured/) }, host_by_schedule: { naive: { all_to_all_ms: 10 }, 'overlapped C2': { probes: 1, measured_steps: 3 } } });
    expect(model.of(overlapped)!.residualMs).toBeCloseTo(0, 4);
    expect(model.of(naive)!.stallMs).toBe(0);
    expect(model.record).toMatchObject({ host_by_schedule: { naive: { stall_ms: 0 } } });
  });

  it('counts a probe\'s pause once a step (stall_ms), apart from the all-to-all work', () => {
    const probe = probeOn(naive, calm);
    // rank 2 paused 100 ms in every step, each time in another dispatch (its records say so; the step took as long)
    const paused = probe.steps.map((step, s) => ({
      stepMs: step.stepMs + 100,
      timelines: step.timelines.map((records, rank) => {
        const at = records.filter((r) => r.name === 'dispatch')[s]!;
        return records.map((r) => (rank === 2 && r === at ? { ...r, endMs: r.endMs + 100 } : r));
      }),
    }));
    const model = benchHostModel(settings, [], new Map([[1, [{ schedule: naive, steps: paused }]]]), null);
    const host = model.of(naive)!;
    expect(host.stallMs).toBeGreaterThan(50);
    expect(model.record).toMatchObject({ host_by_schedule: { naive: { stall_ms: Number(host.stallMs.toPrecision(4)) } } });
    expect(predictStep({ ...benchStepInput(settings, naive, 1), host }).stepMs).toBeCloseTo(paused[0]!.stepMs, 4);
  });

  it('sizes the all-to-all work to replay a probe that went faster than its per-op means', () => {
    // Two ranks' all-to-alls took 40 ms extra, two ranks' 10, and the step went at the pace of the
    // fast two: the mean term (25) would replay a longer step than the probe took.
    const fast = probeOn(overlapped, calm).steps[0]!;
    const slow = probeOn(overlapped, { ...calm, allToAllMs: 40 }).steps[0]!;
    const step = { stepMs: fast.stepMs, timelines: [fast.timelines[0]!, fast.timelines[1]!, slow.timelines[2]!, slow.timelines[3]!] };
    const model = benchHostModel(settings, [], new Map([[1, [{ schedule: overlapped, steps: [step, step, step] }]]]), null);
    const host = model.of(overlapped)!;
    const input = benchStepInput(settings, overlapped, 1);
    expect(predictStep({ ...input, host: { ...host, allToAllMs: 25, allToAllWorkMs: 0 } }).stepMs).toBeGreaterThan(fast.stepMs + 20);
    expect(predictStep({ ...input, host }).stepMs).toBeCloseTo(fast.stepMs, 4);
    expect(model.record).toMatchObject({ host_by_schedule: { 'overlapped C2': { all_to_all_ms: 25, all_to_all_work_ms: Number(host.allToAllWorkMs.toPrecision(4)) } } });
  });

  it("pools every probe of the row's schedule, whichever ratio's row it ran before: one slow probe moves the row's host by its share, not by all of it", () => {
    const probes = new Map([
      [0.5, [probeOn(naive, { ...calm, allToAllMs: 12 }), probeOn(overlapped, { ...calm, allToAllMs: 25 })]],
      [1, [probeOn(naive, { ...calm, allToAllMs: 30, computeLaunchMs: 3 })]],
      [2, [probeOn(naive, { ...calm, allToAllMs: 14 })]],
    ]);
    const model = benchHostModel(settings, [], probes, null);
    // each term the median over the 9 steps of the three naive probes: the slow one's 3 steps do not carry it
    expect(model.of(naive)!.allToAllWorkMs).toBeCloseTo(14, 4);
    expect(model.of(naive)!.computeLaunchMs).toBeCloseTo(1, 6);
    expect(model.record).toMatchObject({ host_by_schedule: { naive: { probes: 3, measured_steps: 9 }, 'overlapped C2': { probes: 1, measured_steps: 3 } } });
    // a schedule's own probes only
    expect(model.of(overlapped)!.allToAllWorkMs).not.toBeCloseTo(model.of(naive)!.allToAllWorkMs, 1);
  });
});
