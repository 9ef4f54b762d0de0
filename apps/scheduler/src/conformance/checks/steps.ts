/**
 * Steps: protocol checks (a step completes, its replies are well formed, the replicas agree) apart
 * from numerical ones (the losses and parameters equal the reference's), so a wrong formula fails
 * only the numerical checks. Every check trains its own run.
 */
import * as grpc from '@grpc/grpc-js';
import { tensorFromMsg } from '@moe/comm';
import type { Tensor } from '@moe/model';
import { FB_OVERLAP, NAIVE, OVERLAPPED, resolveStepSettings, stepOptionsToWire, type StepSettingsInput } from '@moe/schedule';
import { compareParams, expertParamName, namedParams } from '@moe/model';
import { runStepRequests } from '../../run/step-driver';
import { KIT_MODEL, KIT_MODEL_AUX } from '../fixture';
import { errorText, KIT_RANGES, PARAM_TOLERANCE, type Kit, type StepOutcome } from '../kit';
import { judgeLosses } from '../numbers';
import { RawWorker } from '../probes';
import { CheckFailure } from '../report';
import type { Check } from './check';

const TRAINING: StepSettingsInput[] = [{ schedule: NAIVE }, { schedule: OVERLAPPED, chunks: 2 }];
/** A worker that advertises fb-overlap runs its second step as fb-overlap in 2 micro-batches. */
const FB_TRAINING: StepSettingsInput[] = [{ schedule: NAIVE }, { schedule: FB_OVERLAP, microBatches: 2 }];
const trainingOf = (kit: Kit) => (kit.registered?.schedules.includes(FB_OVERLAP) ? FB_TRAINING : TRAINING);
const LOSSY: StepSettingsInput[] = [
  { schedule: OVERLAPPED, chunks: 2, dispatchCodec: 'fp8', combineCodec: 'bf16' },
  { schedule: NAIVE, dispatchCodec: 'bf16', combineCodec: 'f32' },
];

/** A fresh run of KIT_MODEL trained `settings.length` steps, step i with settings[i]. */
async function train(kit: Kit, settings: readonly StepSettingsInput[], owner = [0, 0, 1, 1]) {
  const run = kit.plan(KIT_MODEL, owner, 0);
  await kit.load(run);
  const steps: StepOutcome[] = [];
  for (const [i, s] of settings.entries()) steps.push(await kit.step(run, i, s));
  return { run, steps };
}

const replicasAgree = (steps: StepOutcome[]) => `replicas agree (checksum ${steps.at(-1)!.replies[0]!.paramChecksum})`;

export const runStep: Check = {
  id: 'run-step',
  title: 'runs steps (naive; overlapped, 2 chunks, or fb-overlap in 2 micro-batches when advertised): replies well formed, replicas bitwise equal',
  needs: ['peer'],
  async run(kit) {
    const { run, steps } = await train(kit, trainingOf(kit));
    const counted = steps[0]!.replies.reduce((n, r) => n + r.expertCounts.reduce((a, b) => a + b, 0), 0);
    const tokens = KIT_RANGES.reduce((n, r) => n + r.count, 0) * run.reference.train.seqLen;
    if (!kit.modeled && counted !== tokens * run.model.topK * run.model.layers) {
      throw new CheckFailure(`step 0: expert_counts of both ranks add up to ${counted}, expected tokens * top_k * layers = ${tokens * run.model.topK * run.model.layers}`);
    }
    const second = trainingOf(kit) === FB_TRAINING ? 'naive + fb-overlap (2 micro-batches)' : 'naive + overlapped';
    return `2 steps (${second}); ${replicasAgree(steps)}; ${Number(steps[0]!.replies[run.rank]!.bytesSent)} bytes sent in step 0`;
  },
};

export const loss: Check = {
  id: 'loss',
  title: 'the loss of each step equals the reference (each rank\'s share and the routing named when not)',
  needs: ['peer', 'numbers'],
  async run(kit) {
    const { run, steps } = await train(kit, [...trainingOf(kit), { schedule: NAIVE }]);
    // the other branches of the math: sigmoid scores, the aux loss, 2 shared experts, top-3
    const aux = kit.plan(KIT_MODEL_AUX, [0, 1, 0, 1], 0);
    await kit.load(aux);
    const auxSteps = [await kit.step(aux, 0, { schedule: NAIVE }), await kit.step(aux, 1, { schedule: NAIVE })];
    return `${judgeLosses(run, steps)}; sigmoid + aux loss: ${judgeLosses(aux, auxSteps, 'sigmoid + aux-loss run, ')}`;
  },
};

export const fetchParams: Check = {
  id: 'fetch-params',
  title: 'FetchParams returns its dense parameters and exactly its experts, equal to the reference',
  needs: ['peer'],
  async run(kit) {
    const { run } = await train(kit, trainingOf(kit));
    const reply = await run.target.fetchParams(run.runId, kit.rpcMs);
    const actual = new Map<string, Tensor>();
    for (const p of reply.denseParams) actual.set(p.name, tensorFromMsg(p.tensor, `FetchParams.dense_params ${p.name}`));
    for (const e of reply.experts) {
      if (run.owner[e.expert] !== run.rank) throw new CheckFailure(`FetchParams returned expert ${e.expert} of layer ${e.layer}, which rank ${run.owner[e.expert]} owns`);
      for (const p of e.params) actual.set(expertParamName(e.layer, e.expert, p.name), tensorFromMsg(p.tensor, `FetchParams expert ${e.expert} ${p.name}`));
    }
    // the reference restricted to what this rank holds: every dense parameter and its own experts
    const mine = new Map(
      [...namedParams(run.reference.params)].filter(([name]) => {
        const m = /^layers\.\d+\.experts\.(\d+)\./.exec(name);
        return !m || run.owner[Number(m[1])] === run.rank;
      }),
    );
    let worst;
    try {
      worst = compareParams(actual, mine);
    } catch (error) {
      throw new CheckFailure(`FetchParams: ${errorText(error)}`);
    }
    if (kit.modeled) return `${mine.size} tensors with the right names and shapes (numbers not compared: modeled device)`;
    if (!(worst.maxAbsolute <= PARAM_TOLERANCE)) {
      throw new CheckFailure(
        `after 2 steps ${worst.name}[${worst.index}] is ${worst.actual}, the reference has ${worst.expected} (difference ${worst.maxAbsolute.toExponential(2)}, tolerance ${PARAM_TOLERANCE})`,
      );
    }
    return `${mine.size} tensors; max difference from the reference ${worst.maxAbsolute.toExponential(2)} in ${worst.name}`;
  },
};

export const codecs: Check = {
  id: 'codecs',
  title: 'exchanges FP8_E4M3 dispatch with BF16 combine, and BF16 dispatch: steps complete, replicas agree',
  needs: ['peer'],
  async run(kit) {
    const { steps } = await train(kit, LOSSY);
    return `fp8/bf16 overlapped and bf16/f32 naive steps ran; ${replicasAgree(steps)}`;
  },
};

export const codecNumbers: Check = {
  id: 'codec-numbers',
  title: 'lossy codecs round as the doc says: the losses equal the reference that rounds alike (f32 tolerances)',
  needs: ['peer', 'numbers'],
  async run(kit) {
    const { run, steps } = await train(kit, [...LOSSY, { schedule: NAIVE }]);
    return judgeLosses(run, steps);
  },
};

export const zeroTokenFrames: Check = {
  id: 'zero-token-frames',
  title: 'sends and takes empty frames (a rank holding no experts; one holding all)',
  needs: ['peer'],
  async run(kit) {
    // a rank holding no expert: it receives empty DISPATCH frames and sends empty COMBINE frames
    const none = kit.plan(KIT_MODEL, [0, 0, 0, 0], 1);
    await kit.load(none);
    await kit.step(none, 0, { schedule: OVERLAPPED, chunks: 2 });
    // a rank holding every expert: the other way round, on the other branches of the math
    const all = kit.plan(KIT_MODEL_AUX, [0, 0, 0, 0], 0);
    await kit.load(all);
    await kit.step(all, 0, { schedule: NAIVE });
    return 'a run where it holds no expert (rank 1, overlapped) and one where it holds all 4 (rank 0, sigmoid + aux loss) both trained';
  },
};

export const deadline: Check = {
  id: 'deadline',
  title: 'a peer that never sends: RunStep fails before its deadline, naming the rank and the step; then loaded',
  async run(kit) {
    const silentAddress = kit.silent.address || (await kit.silent.start(kit.o.host));
    const run = kit.plan(KIT_MODEL, [0, 0, 1, 1], 0, silentAddress);
    await kit.load(run);
    const deadlineMs = kit.o.deadlineMs ?? 5_000;
    const batch = run.reference.batch(7);
    const request = runStepRequests(run.runId, 7, batch, KIT_RANGES, stepOptionsToWire(resolveStepSettings()))[0]!;
    const raw = new RawWorker(kit.address);
    const started = performance.now();
    const outcome = await raw.runStep(request, deadlineMs).finally(() => raw.close());
    const ms = Math.round(performance.now() - started);
    if (outcome.ok) throw new CheckFailure('RunStep succeeded although rank 1 never sent a frame');
    if (outcome.code === grpc.status.DEADLINE_EXCEEDED) {
      throw new CheckFailure(
        `no answer within the RunStep deadline of ${deadlineMs} ms: a worker must stop waiting for a peer that does not send ` +
          '(at its peer timeout, and before the deadline of the call, with a margin) and answer with an error',
      );
    }
    if (!/\brank 1\b/.test(outcome.details) || !/\bstep 7\b/.test(outcome.details)) {
      throw new CheckFailure(`answered ${grpc.status[outcome.code]} after ${ms} ms with "${outcome.details}", which does not name the rank that did not send (rank 1) and the step (7)`);
    }
    const answered = `answered ${grpc.status[outcome.code]} after ${ms} ms: "${outcome.details}"`;
    const state = await kit.settle(run.target, 'the worker under test', 3_000);
    if (state !== 'loaded') throw new CheckFailure(`${answered}; then Health says "${state}": after a failed step a worker is back to "loaded" (its shard kept until the next LoadShard)`);
    const sent = kit.silent.received.filter((f) => f.startsWith('step 7')).length;
    return `${answered}; then loaded${sent ? `; it had sent ${sent} frame(s) to the silent rank` : ''}`;
  },
};

export const afterFailure: Check = {
  id: 'after-failure',
  title: 'trains a new run after a failed step',
  needs: ['peer'],
  async run(kit) {
    const run = kit.plan(KIT_MODEL, [0, 1, 0, 1], 0);
    await kit.load(run);
    await kit.step(run, 0, { schedule: NAIVE });
    return 'a new run trained a step';
  },
};
