import { describe, expect, it } from 'vitest';
import { buildSchedule } from '@moe/schedule';
import { CostModel, computeShare, hostCostsOf, medianHostCosts, NO_HOST_COSTS, predictStep, probeExtras, resolveModeledModel, runEngine, stepTasks, fitAllToAllWork, type HostCosts, type ProbeStep, type StepPredictionInput } from '../src';

const model = resolveModeledModel({ hiddenSize: 256, expertFfnSize: 512, routedExperts: 8, vocabSize: 1024, seqLen: 512 });
const input = (schedule: string, chunks: number, dilation: number): StepPredictionInput => ({
  ops: buildSchedule({ kind: schedule, layers: 2, chunks, microBatches: 2 }),
  costs: new CostModel(model, 'H800', { worldSize: 4, layers: 2, computeScale: 1, dilation, accumulationSteps: 1 }),
  tokensPerRank: 512,
  topK: 4,
  worldSize: 4,
  nodeSize: 2,
  latencyScale: 0.01,
  dispatchRowBytes: 256 * 2 + 4,
  combineRowBytes: 256 * 2,
  allReduceValues: 5000,
});

/** What 4 workers would record of a step on `host`: every rank runs it as the simulator does (ms on the step's clock). */
function recorded(i: StepPredictionInput, host: HostCosts): ProbeStep {
  const modeled = stepTasks(i).tasks.map((t) => t.ms);
  const r = runEngine(stepTasks({ ...i, host }).tasks, { devices: 1 });
  const records = i.ops.map((op) => ({
    name: op.kind,
    stream: op.stream,
    layer: op.layer,
    chunk: op.chunk,
    microBatch: op.microBatch,
    startMs: r.start[op.id]!,
    endMs: r.end[op.id]!,
    ...(op.stream === 'compute' ? { modeledMs: modeled[op.id]! } : {}),
  }));
  return { stepMs: r.makespanMs + host.stepMs, timelines: [records, records, records, records] };
}

const host: HostCosts = { computeLaunchMs: 0.4, computeOpMs: 0.2, computeOpShare: 0.03, allToAllMs: 3, perByteMs: 2e-6, allReduceMs: 1.5, stepMs: 7, residualMs: 0, allToAllWorkMs: 0 };

describe('host costs from probe records', () => {
  it('recovers every term from the records of a step run on known host costs (naive, where nothing overlaps)', () => {
    const i = input('naive', 1, 1000);
    const got = hostCostsOf(probeExtras(i, [recorded(i, host), recorded(i, host)], host.perByteMs), host.computeOpShare, host.perByteMs);
    for (const key of Object.keys(host) as (keyof HostCosts)[]) expect(got[key], key).toBeCloseTo(host[key], 6);
  });

  it('and the step predicted on them is the step recorded', () => {
    const i = input('naive', 1, 1000);
    const step = recorded(i, host);
    const got = hostCostsOf(probeExtras(i, [step], host.perByteMs), host.computeOpShare, host.perByteMs);
    expect(predictStep({ ...i, host: got }).stepMs).toBeCloseTo(step.stepMs, 6);
  });

  it('the overshoot\'s share of an op\'s length comes from the same ops at two dilations; the launch does not grow with it', () => {
    const probes = [1000, 4000].map((d) => input('naive', 1, d));
    const ops = probes.flatMap((i) => probeExtras(i, [recorded(i, host)])[0]!.compute);
    expect(computeShare(ops)).toBeCloseTo(host.computeOpShare, 9);
    expect(computeShare(ops.map((o) => ({ ...o, overshootMs: 0.5 })))).toBe(0);
  });

  it('an overlapped probe\'s all-to-all waits on its links behind the one before it: that queueing is the model\'s, not the host\'s', () => {
    const i = input('overlapped', 2, 1000);
    const [got] = probeExtras(i, [recorded(i, { ...NO_HOST_COSTS })]);
    // on no host at all, every extra is zero: an all-to-all that queued is not counted
    expect(got!.allToAll.length).toBeGreaterThan(0);
    for (const extra of got!.allToAll) expect(extra).toBeCloseTo(0, 9);
    expect(got!.compute.every((o) => Math.abs(o.overshootMs) < 1e-9)).toBe(true);
  });

  it.each([
    ['overlapped', 2],
    ['overlapped', 4],
    ['fb-overlap', 1],
    ['fb-overlap', 2],
  ])('recovers the all-to-all term of a %s C%i probe, where all-to-alls are in flight together, and predicts its step', (schedule, chunks) => {
    const i = input(schedule as string, chunks as number, 1000);
    const step = recorded(i, host);
    const got = hostCostsOf(probeExtras(i, [step], host.perByteMs), host.computeOpShare, host.perByteMs);
    expect(got.allToAllMs).toBeCloseTo(host.allToAllMs, 6);
    expect(predictStep({ ...i, host: got }).stepMs).toBeCloseTo(step.stepMs, 3);
  });

  it('takes each term as the median over the probe\'s steps: one stalled step does not move it', () => {
    const i = input('naive', 1, 1000);
    const stalled = recorded(i, { ...host, allToAllMs: 300, computeLaunchMs: 50, stepMs: 900 });
    const got = hostCostsOf(probeExtras(i, [recorded(i, host), stalled, recorded(i, host)], host.perByteMs), host.computeOpShare, host.perByteMs);
    expect(got.allToAllMs).toBeCloseTo(host.allToAllMs, 6);
    expect(got.computeLaunchMs).toBeCloseTo(host.computeLaunchMs, 6);
    expect(got.stepMs).toBeCloseTo(host.stepMs, 6);
  });

  it('the median of several probes\' host costs, term by term, leaves out the one a load spike caught', () => {
    const spiked = { ...host, allToAllMs: 90, computeLaunchMs: 20 };
    expect(medianHostCosts([host, spiked, { ...host, allToAllMs: 4 }])).toEqual({ ...host, allToAllMs: 4 });
    expect(() => medianHostCosts([])).toThrow(/no host costs/);
  });

  it.each([
    ['overlapped', 4],
    ['fb-overlap', 2],
    ['naive', 1],
  ])('recovers the all-to-all work of a %s C%i probe whose all-to-alls queue for the host, and replays its step', (schedule, chunks) => {
    const i = input(schedule as string, chunks as number, 1000);
    const onHost = { ...host, allToAllMs: 0, allToAllWorkMs: 5 };
    const steps = [recorded(i, onHost), recorded(i, onHost), recorded(i, onHost)];
    const got = fitAllToAllWork(i, steps, hostCostsOf(probeExtras(i, steps, host.perByteMs), host.computeOpShare, host.perByteMs));
    expect(got.allToAllWorkMs).toBeCloseTo(5, 4);
    expect(got.allToAllMs).toBe(0);
    expect(got.residualMs).toBeCloseTo(0, 4);
    expect(predictStep({ ...i, host: got }).stepMs).toBeCloseTo(steps[0]!.stepMs, 4);
  });

  it('moves a latency term to work that replays the probe: the same amount where nothing overlaps', () => {
    const naive = input('naive', 1, 1000);
    const steps = [recorded(naive, host)];
    const got = fitAllToAllWork(naive, steps, hostCostsOf(probeExtras(naive, steps, host.perByteMs), host.computeOpShare, host.perByteMs));
    expect(got.allToAllWorkMs).toBeCloseTo(host.allToAllMs, 4);
    const overlapped = input('overlapped', 4, 1000);
    const its = [recorded(overlapped, host)];
    const fit = fitAllToAllWork(overlapped, its, hostCostsOf(probeExtras(overlapped, its, host.perByteMs), host.computeOpShare, host.perByteMs));
    expect(predictStep({ ...overlapped, host: fit }).stepMs).toBeCloseTo(its[0]!.stepMs, 4);
  });

  it('keeps as a residual what even no all-to-all work cannot replay', () => {
    const i = input('overlapped', 2, 1000);
    const steps = [recorded(i, host)];
    const terms = hostCostsOf(probeExtras(i, steps, host.perByteMs), host.computeOpShare, host.perByteMs);
    // per-op terms that overshoot the probe even with no all-to-all at all
    const got = fitAllToAllWork(i, steps, { ...terms, computeLaunchMs: terms.computeLaunchMs + 10 });
    expect(got.allToAllWorkMs).toBe(0);
    expect(got.residualMs).toBeLessThan(0);
    expect(predictStep({ ...i, host: got }).stepMs).toBeCloseTo(steps[0]!.stepMs, 6);
  });

  it('says which rank lacks which op when a probe ran another op list', () => {
    const i = input('naive', 1, 1000);
    const step = recorded(i, host);
    const short: ProbeStep = { ...step, timelines: [step.timelines[0]!, step.timelines[1]!.filter((r) => r.name !== 'combine_bwd'), step.timelines[2]!, step.timelines[3]!] };
    expect(() => probeExtras(i, [short])).toThrow(/rank 1 has no record of op \d+ \(combine_bwd layer 1/);
  });
});
