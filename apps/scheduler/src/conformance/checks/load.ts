/** LoadShard: every refusal docs/custom-workers.md lists, a real shard, and AdamW state brought by LoadShard. */
import * as grpc from '@grpc/grpc-js';
import { namedTensorsFromMsg, type LoadShardRequest } from '@moe/comm';
import { cloneParams, initParams, optimizerOrder, type AdamWState, type ModelParams, type Tensor } from '@moe/model';
import { NAIVE } from '@moe/schedule';
import { optimizerStateForRank, type OptimizerSnapshot } from '../../run/checkpoint';
import { denseChecksum, KIT_MODEL, ReferenceStepper } from '../fixture';
import { PARAM_TOLERANCE, type Kit } from '../kit';
import { RawWorker } from '../probes';
import { CheckFailure } from '../report';
import type { Check } from './check';

/** AdamW's state by parameter name (`optimizerOrder` names), as a checkpoint holds it. */
function snapshotOf(params: ModelParams, state: AdamWState): OptimizerSnapshot {
  const names = optimizerOrder(params);
  const map = (values: Float32Array[]) => new Map<string, Tensor>(names.map((p, i) => [p.name, { shape: [...p.tensor.shape], data: values[i]! }]));
  return { t: state.t, m: map(state.m), v: map(state.v) };
}

/** The requests LoadShard must refuse, each named as the doc lists it. */
function refusals(kit: Kit): [string, LoadShardRequest][] {
  const run = kit.plan(KIT_MODEL, [0, 0, 1, 1], 0, '127.0.0.1:1');
  const base = run.requests[0]!;
  const other = run.requests[1]!;
  const dense = base.denseParams ?? [];
  const experts = base.experts ?? [];
  const zeroState = snapshotOf(initParams(KIT_MODEL), {
    t: 1,
    m: optimizerOrder(initParams(KIT_MODEL)).map((p) => new Float32Array(p.tensor.data.length)),
    v: optimizerOrder(initParams(KIT_MODEL)).map((p) => new Float32Array(p.tensor.data.length)),
  });
  const state = optimizerStateForRank(zeroState, run.owner, 0);
  const truncated = { ...dense[0]!, tensor: { ...dense[0]!.tensor!, data: Buffer.from(dense[0]!.tensor!.data as Uint8Array).subarray(4) } };
  return [
    ['an empty run_id', { ...base, runId: '' }],
    ['rank 2 of world_size 2', { ...base, rank: 2 }],
    ['3 peer_addresses for world_size 2', { ...base, peerAddresses: [...(base.peerAddresses ?? []), '127.0.0.1:2'] }],
    ['expert_owner with 3 entries for 4 experts', { ...base, expertOwner: [0, 0, 1] }],
    ['expert_owner naming rank 2 of world_size 2', { ...base, expertOwner: [0, 0, 1, 2] }],
    ['top_k 5 above routed_experts 4', { ...base, model: { ...base.model, topK: 5 } }],
    ['hidden_size 0', { ...base, model: { ...base.model, hiddenSize: 0 } }],
    ['an expert it does not own (expert 2 goes to rank 1)', { ...base, experts: [...experts, { ...other.experts![0]! }] }],
    ['one of its experts twice', { ...base, experts: [...experts, { ...experts[0]! }] }],
    ['one of its experts missing', { ...base, experts: experts.slice(1) }],
    [`dense parameter ${dense[0]!.name} 4 bytes short of its shape`, { ...base, denseParams: [truncated, ...dense.slice(1)] }],
    [`dense parameter ${dense.at(-1)!.name} missing`, { ...base, denseParams: dense.slice(0, -1) }],
    ['an unknown dense parameter "layers.9.norm"', { ...base, denseParams: [...dense, { ...dense[1]!, name: 'layers.9.norm' }] }],
    ['optimizer_state for a parameter it does not hold', { ...base, optimizerState: { ...state, m: [...state.m!, { ...state.m![0]!, name: 'layers.0.experts.3.w1' }] } }],
    ['optimizer_state with a moment of the wrong size', { ...base, optimizerState: { ...state, v: [{ ...state.v![0]!, tensor: { ...state.v![0]!.tensor!, shape: [1], data: Buffer.alloc(4) } }, ...state.v!.slice(1)] } }],
    ['optimizer_state missing a parameter\'s moments', { ...base, optimizerState: { ...state, m: state.m!.slice(1), v: state.v!.slice(1) } }],
  ];
}

export const loadShardInvalid: Check = {
  id: 'load-shard-invalid',
  title: 'refuses every impossible LoadShard the doc lists with INVALID_ARGUMENT and a reason',
  async run(kit) {
    const raw = new RawWorker(kit.address);
    const seen: string[] = [];
    const wrong: string[] = [];
    try {
      for (const [what, request] of refusals(kit)) {
        const outcome = await raw.loadShard(request, kit.rpcMs);
        if (outcome.ok) wrong.push(`${what}: accepted`);
        else if (outcome.code !== grpc.status.INVALID_ARGUMENT) wrong.push(`${what}: ${grpc.status[outcome.code] ?? outcome.code} ("${outcome.details}")`);
        else if (!outcome.details) wrong.push(`${what}: INVALID_ARGUMENT without details`);
        else seen.push(`${what}: "${outcome.details}"`);
      }
    } finally {
      raw.close();
    }
    if (wrong.length) throw new CheckFailure(`${wrong.length} LoadShard(s) not refused with INVALID_ARGUMENT and a reason: ${wrong.join(' | ')}`);
    return `refused ${seen.length}: ${seen.join(' | ')}`;
  },
};

export const loadShard: Check = {
  id: 'load-shard',
  title: 'takes a shard; param_checksum is the FNV-1a 64 of its dense parameters',
  needs: ['peer'],
  async run(kit) {
    const run = kit.plan(KIT_MODEL, [0, 0, 1, 1], 0);
    const checksum = await kit.load(run);
    const expected = denseChecksum(initParams(run.model));
    if (checksum !== expected) {
      throw new CheckFailure(`param_checksum ${checksum || '(empty)'}, expected ${expected} (FNV-1a 64 of the float32 bytes of the dense parameters in the canonical order)`);
    }
    const h = await run.target.health(kit.rpcMs);
    if (h.state !== 'loaded' || h.runId !== run.runId || h.rank !== run.rank) {
      throw new CheckFailure(`after LoadShard, Health says state "${h.state}", run "${h.runId}", rank ${h.rank}; expected "loaded", "${run.runId}", ${run.rank}`);
    }
    return `param_checksum ${checksum}; Health: loaded, rank ${run.rank}`;
  },
};

export const optimizerState: Check = {
  id: 'optimizer-state',
  title: 'resumes from AdamW state given at LoadShard; FetchParams returns the state after the step',
  needs: ['peer', 'numbers'],
  async run(kit) {
    // the reference after step 0; the run starts from its parameters and AdamW state
    const resumed = new ReferenceStepper(KIT_MODEL);
    resumed.step(0);
    const owner = [0, 0, 1, 1];
    const snapshot = snapshotOf(resumed.params, resumed.optimizerState());
    const run = kit.plan(KIT_MODEL, owner, 0, kit.peerAddress, {
      params: cloneParams(resumed.params),
      optimizerState: [0, 1].map((rank) => optimizerStateForRank(snapshot, owner, rank)),
    });
    run.reference = resumed;
    await kit.load(run);
    await kit.step(run, 1, { schedule: NAIVE });
    const reply = await run.target.fetchParams(run.runId, kit.rpcMs, true);
    const state = reply.optimizerState;
    if (!state) throw new CheckFailure('FetchParams with include_optimizer_state returned no optimizer_state');
    const want = snapshotOf(resumed.params, resumed.optimizerState());
    if (state.step !== want.t) {
      throw new CheckFailure(`after one step from a LoadShard with optimizer_state step 1, FetchParams says step ${state.step}, expected ${want.t} (start AdamW from the state LoadShard brings)`);
    }
    let worst = { diff: 0, name: '' };
    for (const kind of ['m', 'v'] as const) {
      const got = namedTensorsFromMsg(state[kind], `FetchParams.optimizer_state.${kind}`);
      for (const [name, t] of got) {
        const ref = want[kind].get(name);
        if (!ref) throw new CheckFailure(`FetchParams.optimizer_state.${kind} has ${name}, which is not a parameter this rank trains`);
        for (let i = 0; i < t.data.length; i++) {
          const d = Math.abs(t.data[i]! - ref.data[i]!);
          if (!(d <= worst.diff)) worst = { diff: d, name: `${kind} of ${name}[${i}]` };
        }
      }
    }
    if (!(worst.diff <= PARAM_TOLERANCE)) throw new CheckFailure(`AdamW state after the step: ${worst.name} differs from the reference by ${worst.diff.toExponential(2)} (tolerance ${PARAM_TOLERANCE})`);
    return `step ${state.step}; m and v within ${worst.diff.toExponential(1)} of the reference`;
  },
};
