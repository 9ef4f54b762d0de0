import { describe, expect, it } from 'vitest';
import { buildSchedule } from '@moe/schedule';
import { CostModel, computeShare, hostCostsOf, NO_HOST_COSTS, predictStep, probeExtras, probeStallMs, resolveModeledModel, runEngine, stepTasks, fitAllToAllWork, type HostCosts, type ProbeStep, type StepPredictionInput } from '../src';

const model = resolveModeledModel({ hiddenSize: 256, expertFfnSize: 512, routedExperts: 8, vocabSize: 1024, seqLen: 512 });
const input = (schedule: string, chunks: number, dilation: number, computeScale = 1): StepPredictionInput => ({
  ops: buildSchedule({ kind: schedule, layers: 2, chunks, microBatches: 2 }),
  costs: new CostModel(model, 'H800', { worldSize: 4, layers: 2, computeScale, dilation, accumulationSteps: 1 }),
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
function recorded(i: StepPredictionInput, host: HostCosts, pause = { ms: 0, dispatch: 0 }): ProbeStep {
  const modeled = stepTasks(i).tasks.map((t) => t.ms);
  const tasks = stepTasks({ ...i, host }).tasks;
  // a pause of `pause.ms` in the step's dispatch number `pause.dispatch`: the wait of every rank for one that stalled
  const paused = i.ops.filter((op) => op.kind === 'dispatch')[pause.dispatch]!;
  tasks[paused.id] = { ...tasks[paused.id]!, ms: tasks[paused.id]!.ms + pause.ms };
  const r = runEngine(tasks, { devices: 1 });
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

const host: HostCosts = { computeLaunchMs: 0.4, computeOpMs: 0.2, computeOpShare: 0.03, allToAllMs: 3, perByteMs: 2e-6, allReduceMs: 1.5, stepMs: 7, residualMs: 0, allToAllWorkMs: 0, stallMs: 0 };

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

  it('counts a stall once: what an all-to-all took beyond 3 times its median over the steps, the largest rank\'s, the median over steps', () => {
    const a2a = (ms: number[]) => ms.map((took, i) => ({ name: 'dispatch', stream: 'comm', layer: 0, chunk: 0, microBatch: i, startMs: 100 * i, endMs: 100 * i + took }));
    // the fourth all-to-all always queues behind the others (40 ms): that is its typical, not a stall
    const calm = a2a([10, 10, 10, 40]);
    // rank 1 paused in its all-to-all `at` (100 ms); ranks 0 and 2 waited for it less long in theirs
    const pausedIn = (at: number): ProbeStep => {
      const took = (ms: number) => a2a([10, 10, 10, 40].map((typical, i) => (i === at ? ms : typical)));
      return { stepMs: 500, timelines: [took(60), took(100), took(45), calm] };
    };
    const quiet: ProbeStep = { stepMs: 400, timelines: [calm, calm, calm, calm] };
    expect(probeStallMs([pausedIn(2), pausedIn(1), quiet])).toBeCloseTo(70, 9); // 70, 70 and 0
    expect(probeStallMs([pausedIn(2), quiet, quiet])).toBe(0); // one step in three: the median step has none
    expect(probeStallMs([quiet, quiet])).toBe(0);
  });

  it('keeps a stall out of the all-to-all work, so a row that overlaps more still pays it whole', () => {
    const onHost = { ...host, allToAllMs: 0, allToAllWorkMs: 5 };
    const i = input('overlapped', 4, 1000);
    const steps = [0, 1, 2].map((dispatch) => recorded(i, onHost, { ms: 100, dispatch })); // a 100 ms pause in every step, each in another all-to-all
    const stall = probeStallMs(steps); // what the paused all-to-all took beyond 3 x its rank's median
    expect(stall).toBeGreaterThan(50);
    const terms = hostCostsOf(probeExtras(i, steps, host.perByteMs), host.computeOpShare, host.perByteMs);
    const kept = fitAllToAllWork(i, steps, { ...terms, stallMs: stall });
    const spread = fitAllToAllWork(i, steps, terms);
    const medianStep = steps.map((st) => st.stepMs).sort((a, b) => a - b)[1]!;
    for (const fit of [kept, spread]) expect(predictStep({ ...i, host: fit }).stepMs).toBeCloseTo(medianStep, 4);
    expect(kept.allToAllWorkMs).toBeLessThan(spread.allToAllWorkMs);
    // a row with 16 times the compute, enough to hide all-to-all work: the pause is the same, and only the kept one says so
    const row = input('overlapped', 4, 1000, 16);
    const noPause = predictStep({ ...row, host: onHost }).stepMs;
    const keptPays = predictStep({ ...row, host: kept }).stepMs - noPause;
    expect(keptPays).toBeGreaterThanOrEqual(stall - 1e-6);
    expect(predictStep({ ...row, host: spread }).stepMs - noPause).toBeLessThan(keptPays - 20);
  });

  it('says which rank lacks which op when a probe ran another op list', () => {
    const i = input('naive', 1, 1000);
    const step = recorded(i, host);
    const short: ProbeStep = { ...step, timelines: [step.timelines[0]!, step.timelines[1]!.filter((r) => r.name !== 'combine_bwd'), step.timelines[2]!, step.timelines[3]!] };
    expect(() => probeExtras(i, [short])).toThrow(/rank 1 has no record of op \d+ \(combine_bwd layer 1/);
  });
});
