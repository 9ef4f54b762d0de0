/**
 * The predicted step of a local run: one rank's op list (the same `Op[]` the workers execute,
 * from @moe/schedule's buildSchedule) replayed on the engine with the `sim` backend's costs and
 * links, so `moe bench` can print what the simulator expected beside what it measured.
 *
 * Symmetry: with uniform routing every rank expects the same rows, so one rank stands for all;
 * its all-to-all ends when its own ports have sent its frames (every peer's do the same).
 * Per all-to-all of chunk c (tokens t_c of the micro-batch's T/M, S_c = t_c * k slots), each
 * peer gets S_c / W rows: the node's other ranks over the intra port, the rest over the inter
 * port, one frame each; every frame pays the (scaled) latency, pipelined, and its bytes on the port.
 * The all-reduce is two exchanges (reduce-scatter and all-gather) of n/W f32 values a peer.
 *
 * A local cluster is more than its modeled devices and links: processes on one host hand ops to
 * device threads, move frames through a real data plane and wait for each other. `host`
 * (HostCosts) says what that adds, each term measured by the caller on runs other than the one
 * predicted; without it the prediction is the modeled cluster alone.
 */
import { chunkTokenRange, type Op } from '@moe/schedule';
import type { CostModel, OpCost } from '../cost-model';
import { linkClassOf } from '../link-model';
import { PORTS, runEngine, SimulationError, type PortUse, type SimTask } from './engine';
import { total, uncovered, union, type Span } from './intervals';

/** What a local cluster's host adds to the modeled devices and links, ms (see `measureHostCosts`). */
export interface HostCosts {
  /** Every compute op's launch: the event loop handing it to the device thread once it may run (the device idles meanwhile). */
  computeLaunchMs: number;
  /** Every compute op's overshoot past its modeled ms (the device thread waking late): this much fixed ... */
  computeOpMs: number;
  /** ... and this share of its modeled ms. */
  computeOpShare: number;
  /** Every all-to-all beyond its wire and bytes: its launch, each frame's fixed cost and acknowledgement, peers arriving late. A latency: it holds no port. */
  allToAllMs: number;
  /**
   * Every all-to-all's host work after its bytes, serial on the rank's host port (with the bytes'
   * own work): the cores that move frames are shared, so all-to-alls in flight together queue for
   * them. `fitAllToAllWork` moves the latency term here, sized so the probe's replay is the probe.
   */
  allToAllWorkMs: number;
  /** The host data plane's ms per byte a rank sends: after each frame's modeled wire, serial on the rank's host port. */
  perByteMs: number;
  /** The all-reduce beyond its wire and bytes. */
  allReduceMs: number;
  /** Once a step: the control plane (RunStep out, replies back). */
  stepMs: number;
  /**
   * Once a step: what a probe of the same schedule took beyond the engine's replay of it with
   * every term above (see `fitAllToAllWork`): what no per-op term holds. Negative when the terms
   * overshoot even with no all-to-all work.
   */
  residualMs: number;
  /**
   * Once a step: what stalls took (`probeStallMs`). A rank that pauses (a garbage collection, the
   * CPU taken by another process) holds every peer at its next all-to-all whatever the schedule
   * overlaps, so a stall is added to the step, not spread as all-to-all work a schedule could hide.
   */
  stallMs: number;
}

export const NO_HOST_COSTS: HostCosts = { computeLaunchMs: 0, computeOpMs: 0, computeOpShare: 0, allToAllMs: 0, allToAllWorkMs: 0, perByteMs: 0, allReduceMs: 0, stepMs: 0, residualMs: 0, stallMs: 0 };

export interface StepPredictionInput {
  ops: readonly Op[];
  /** Built as the sim backend builds it (worldSize, layers, computeScale, dilation, accumulationSteps). */
  costs: CostModel;
  /** Tokens a rank models in the step, all micro-batches together. */
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
  /** The host under a local cluster (default: none). */
  host?: HostCosts;
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

/** The engine's tasks of one rank's step (index = op id), with the bytes each comm op sends. */
export function stepTasks(input: StepPredictionInput): { tasks: SimTask[]; bytesSent: number[] } {
  const { costs: c, tokensPerRank: T, topK: k, worldSize: W } = input;
  const host = input.host ?? NO_HOST_COSTS;
  const profile = c.profile;
  const dilation = c.options.dilation ?? 1;
  const chunksOf = Math.max(1, ...input.ops.map((o) => o.chunk + 1));
  // A schedule of M micro-batches (ops tagged 0..M-1) runs T/M of the rank's tokens in each op.
  const microBatches = Math.max(1, ...input.ops.map((o) => o.microBatch + 1));
  const perMicroBatch = T / microBatches;
  const tokensIn = (chunk: number) => (chunk < 0 ? perMicroBatch : ((r) => r.end - r.begin)(chunkTokenRange(perMicroBatch, chunksOf, chunk)));

  /** One frame of `bytesPerPeer` to each peer, `rounds` times: each on its port, then through the host's data plane; latency pipelined. */
  const exchange = (bytesPerPeer: number, rounds: number): { ms: number; wire: PortUse[] } => {
    const wire: PortUse[] = [];
    let latencyMs = 0;
    for (let round = 0; round < rounds; round++) {
      for (let dest = 1; dest < W; dest++) {
        const spec = profile[linkClassOf(0, dest, input.nodeSize)];
        const port = linkClassOf(0, dest, input.nodeSize) === 'intra' ? PORTS.nvlink : PORTS.nic;
        wire.push({ port, ms: (bytesPerPeer / (spec.bandwidthGBps * 1e6)) * dilation, hostMs: bytesPerPeer * host.perByteMs });
        latencyMs = Math.max(latencyMs, (spec.latencyUs * input.latencyScale * dilation) / 1e3);
      }
    }
    return { ms: rounds * latencyMs, wire };
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
        // The embedding backward of the whole step's tokens, once (the sim backend's gradientsToReduce).
        return c.grads(T);
      case 'update':
        return c.update();
      default:
        throw new SimulationError(`op ${op.id} (${op.kind}) is on the compute stream but has no modeled cost`);
    }
  };

  const bytesSent: number[] = [];
  const tasks = input.ops.map((op): SimTask => {
    bytesSent.push(0);
    if (op.stream === 'compute') {
      const ms = c.ms(compute(op));
      return { device: 0, stream: 'compute', launchMs: host.computeLaunchMs, ms: ms * (1 + host.computeOpShare) + host.computeOpMs, deps: [...op.deps] };
    }
    if (op.kind === 'allreduce') {
      // Reduce-scatter then all-gather: the same frames twice, one after the other.
      const bytesPerPeer = (input.allReduceValues / W) * 4;
      const { ms, wire } = exchange(bytesPerPeer, 2);
      bytesSent[op.id] = 2 * (W - 1) * bytesPerPeer;
      return { device: 0, stream: 'comm', ms: ms + host.allReduceMs, wire, deps: [...op.deps] };
    }
    const rowBytes = op.kind === 'dispatch' ? input.dispatchRowBytes : input.combineRowBytes;
    const bytesPerPeer = ((tokensIn(op.chunk) * k) / W) * rowBytes;
    const { ms, wire } = exchange(bytesPerPeer, 1);
    bytesSent[op.id] = (W - 1) * bytesPerPeer;
    return { device: 0, stream: 'comm', ms: ms + host.allToAllMs, wire, hostMs: host.allToAllWorkMs, deps: [...op.deps] };
  });
  return { tasks, bytesSent };
}

export function predictStep(input: StepPredictionInput): StepPrediction {
  const { tasks } = stepTasks(input);
  const r = runEngine(tasks, { devices: 1 });
  const busy: Span[] = [];
  const comm: Span[] = [];
  input.ops.forEach((op, i) => {
    if (op.stream === 'compute') busy.push([r.start[i]!, r.end[i]!]);
    else if (ALL_TO_ALL.has(op.kind)) comm.push([r.start[i]!, r.end[i]!]);
  });
  const busyU = union(busy);
  const commU = union(comm);
  const host = input.host ?? NO_HOST_COSTS;
  return { stepMs: r.makespanMs + host.stepMs + host.residualMs + host.stallMs, computeMs: total(busyU), commMs: total(commU), exposedCommMs: uncovered(commU, busyU) };
}
