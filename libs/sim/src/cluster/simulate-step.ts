/**
 * The predicted step of a local run: one rank's op list (the same `Op[]` the workers execute,
 * from @moe/schedule's buildSchedule) replayed on the engine with the `sim` backend's costs and
 * links, so `moe bench` can print what the simulator expected beside what it measured.
 *
 * Symmetry: with uniform routing every rank expects the same rows, so one rank stands for all;
 * its all-to-all ends when its own ports have sent its frames (every peer's do the same).
 * Per all-to-all of chunk c (tokens t_c of the rank's T, S_c = t_c * k slots), each peer gets
 * S_c / W rows: the node's other ranks over the intra port, the rest over the inter port, one
 * frame each; every frame pays the (scaled) latency, pipelined, and its bytes on the port.
 * The all-reduce is two exchanges (reduce-scatter and all-gather) of n/W f32 values a peer.
 * What the model leaves out is named: `hostMsPerFrame` (the host transport's own time per frame
 * sent, one op at a time: a local run's frames are small, so a message's fixed cost dominates) and `hostMsPerStep` (control plane: RunStep round trip, event-loop
 * wake-ups), both measured by the caller on other runs than the one predicted.
 */
import { chunkTokenRange, type Op } from '@moe/schedule';
import type { CostModel, OpCost } from '../cost-model';
import { linkClassOf } from '../link-model';
import { PORTS, runEngine, SimulationError, type PortUse, type SimTask } from './engine';
import { total, uncovered, union, type Span } from './intervals';

export interface StepPredictionInput {
  ops: readonly Op[];
  /** Built as the sim backend builds it (worldSize, layers, computeScale, dilation, accumulationSteps). */
  costs: CostModel;
  tokensPerRank: number;
  topK: number;
  worldSize: number;
  nodeSize: number;
  /** The sim option that scales link latencies (default 1). */
  latencyScale: number;
  /** Wire bytes of one row: dispatch (forward), and the combine and both backward all-to-alls. */
  dispatchRowBytes: number;
  combineRowBytes: number;
  /** f32 values of the all-reduced vector. */
  allReduceValues: number;
  /** Host transport ms per frame a rank sends (measured elsewhere); taken one op at a time, after the wire. */
  hostMsPerFrame?: number;
  hostMsPerStep?: number;
  /** Host ms each compute op takes beyond its model (timer granularity and wake-ups), measured elsewhere. */
  hostMsPerComputeOp?: number;
}

export interface StepPrediction {
  stepMs: number;
  /** Busy time of the compute stream. */
  computeMs: number;
  /** Time at least one all-to-all was in flight. */
  commMs: number;
  /** Time the compute stream sat idle while an all-to-all was in flight. */
  exposedCommMs: number;
}

const ALL_TO_ALL = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd']);

export function predictStep(input: StepPredictionInput): StepPrediction {
  const { costs: c, tokensPerRank: T, topK: k, worldSize: W } = input;
  const profile = c.profile;
  const dilation = c.options.dilation ?? 1;
  const chunksOf = Math.max(1, ...input.ops.map((o) => o.chunk + 1));
  // A schedule of M micro-batches (ops tagged 0..M-1) runs T/M of the rank's tokens in each op.
  const microBatches = Math.max(1, ...input.ops.map((o) => o.microBatch + 1));
  const perMicroBatch = T / microBatches;
  const tokensIn = (chunk: number) => (chunk < 0 ? perMicroBatch : ((r) => r.end - r.begin)(chunkTokenRange(perMicroBatch, chunksOf, chunk)));
  const peers = { intra: 0, inter: 0 };
  for (let dest = 1; dest < W; dest++) peers[linkClassOf(0, dest, input.nodeSize)]++;

  /** One frame to each peer of `bytesPerPeer`; ports per link class, latency pipelined. */
  const exchange = (bytesPerPeer: number): { ms: number; wire: PortUse[]; hostMs: number } => {
    const wire: PortUse[] = [];
    let latencyMs = 0;
    for (const cls of ['intra', 'inter'] as const) {
      if (peers[cls] === 0) continue;
      const spec = profile[cls];
      wire.push({ port: cls === 'intra' ? PORTS.nvlink : PORTS.nic, ms: ((peers[cls] * bytesPerPeer) / (spec.bandwidthGBps * 1e6)) * dilation });
      latencyMs = Math.max(latencyMs, (spec.latencyUs * input.latencyScale * dilation) / 1e3);
    }
    return { ms: latencyMs, wire, hostMs: (W - 1) * (input.hostMsPerFrame ?? 0) };
  };

  const compute = (op: Op): OpCost => {
    const tokens = perMicroBatch;
    const rows = tokensIn(op.chunk) * k;
    switch (op.kind) {
      case 'begin':
        return c.begin(tokens);
      case 'route':
        return c.route(tokens);
      case 'shared':
        return c.shared(tokens);
      case 'experts':
        return c.experts(rows);
      case 'post':
        return c.post(tokens, tokens * k);
      case 'loss':
        return c.loss(tokens);
      case 'post_bwd':
        return c.postBackward(tokens, tokens * k);
      case 'experts_bwd':
        return c.expertsBackward(rows);
      case 'experts_dgrad':
        return c.expertsInputGrad(rows);
      case 'experts_wgrad':
        return c.expertsWeightGrad(rows);
      case 'shared_bwd':
        return c.sharedBackward(tokens);
      case 'route_bwd':
        return c.routeBackward(tokens);
      case 'grads':
        return c.grads(tokens);
      case 'update':
        return c.update();
      default:
        throw new SimulationError(`op ${op.id} (${op.kind}) is on the compute stream but has no modeled cost`);
    }
  };

  const tasks: SimTask[] = input.ops.map((op) => {
    if (op.stream === 'compute') return { device: 0, stream: 'compute', ms: c.ms(compute(op)) + (input.hostMsPerComputeOp ?? 0), deps: [...op.deps] };
    if (op.kind === 'allreduce') {
      const half = exchange((input.allReduceValues / W) * 4);
      // Reduce-scatter then all-gather: the same frames twice, one after the other.
      return { device: 0, stream: 'comm', ms: 2 * half.ms, wire: half.wire.map((w) => ({ ...w, ms: 2 * w.ms })), hostMs: 2 * half.hostMs, deps: [...op.deps] };
    }
    const rowBytes = op.kind === 'dispatch' ? input.dispatchRowBytes : input.combineRowBytes;
    const { ms, wire, hostMs } = exchange(((tokensIn(op.chunk) * k) / W) * rowBytes);
    return { device: 0, stream: 'comm', ms, wire, hostMs, deps: [...op.deps] };
  });
  const r = runEngine(tasks, { devices: 1 });
  const busy: Span[] = [];
  const comm: Span[] = [];
  input.ops.forEach((op, i) => {
    if (op.stream === 'compute') busy.push([r.start[i]!, r.end[i]!]);
    else if (ALL_TO_ALL.has(op.kind)) comm.push([r.start[i]!, r.end[i]!]);
  });
  const busyU = union(busy);
  const commU = union(comm);
  return { stepMs: r.makespanMs + (input.hostMsPerStep ?? 0), computeMs: total(busyU), commMs: total(commU), exposedCommMs: uncovered(commU, busyU) };
}
