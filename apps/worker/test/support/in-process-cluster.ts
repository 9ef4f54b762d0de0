/**
 * Several ranks in one process: inline cpu backends over in-memory transports, driven exactly
 * as the scheduler drives worker processes. For fast parity tests of the executor and schedules.
 */
import { codecRounding, createInMemoryTransports, ReplicaChooser, type CodecName } from '@moe/comm';
import {
  MarkovChain,
  expertParamName,
  replicaGradientLength,
  type ReplicaChecksum,
  initParams,
  type ModelConfig,
  type StepMirror,
  type Tensor,
  type TrainConfig,
} from '@moe/model';
import { primaryOwner, replicatedExperts, sliceSequences, splitSequences, tokenSplit, type ExpertPlacement } from '@moe/placement';
import { chunkTokenRange } from '@moe/schedule';
import { PlantedFault, type FaultName } from '../../src/schedule/faults';
import { CpuBackend } from '../../src/backends/cpu-backend';
import type { Backend } from '../../src/backend';
import { shardOf } from './shard';
import { buildSchedule } from '@moe/schedule';
import { StepExecutor } from '../../src/schedule/executor';
import { microBatchesOf } from '../../src/schedule/micro-batches';

export interface InProcessRun {
  losses: number[];
  checksums: string[][];
  /** Final dense params of rank 0 and every expert from its owner: name -> tensor. */
  params: Map<string, Tensor>;
  bytesSent: number[];
  /** [world] all-to-all bytes each rank sent, by link class, summed over the steps. */
  linkBytes: { intra: number; inter: number }[];
  /** Redundant experts: [steps][world] each rank's replica checksums after the step's update. */
  replicaChecksums: ReplicaChecksum[][][];
  /** Redundant experts: [layers·P] tokens routed to each physical expert, summed over ranks and steps. */
  physicalCounts: number[];
  /** Every copy of every expert: name -> [rank, tensor] per holder (params keeps one, the first copy's). */
  copies: Map<string, [number, Tensor][]>;
}

export async function trainInProcess(options: {
  model: ModelConfig;
  train: TrainConfig;
  owner: number[];
  /** Redundant experts: the placement (owner is then ignored: each expert's first copy owns it). */
  placement?: ExpertPlacement;
  world: number;
  schedule: string;
  chunks?: number;
  /** Micro-batches each rank splits its sequences into (gradients accumulate; one update a step). */
  microBatches?: number;
  dispatchCodec?: CodecName;
  combineCodec?: CodecName;
  allToAll?: 'flat' | 'hierarchical';
  /** Ranks per modeled node (0: one node). */
  nodeSize?: number;
  /** Edits the initial parameters in place before the shards are built (e.g. to force a routing). */
  mutateParams?: (params: ReturnType<typeof initParams>) => void;
  /** A fault planted in every rank's executor (each fault acts on its own ranks). */
  fault?: FaultName;
  /** What each rank's executor runs on instead of its cpu backend (e.g. one lacking an optional method). */
  wrapBackend?: (backend: CpuBackend) => Backend;
}): Promise<InProcessRun> {
  const { model, train, world, placement } = options;
  const owner = placement ? primaryOwner(placement, model.routedExperts) : options.owner;
  const init = initParams(model);
  options.mutateParams?.(init);
  const transports = createInMemoryTransports(world);
  const backends = Array.from({ length: world }, () => new CpuBackend({ inline: true }));
  for (let rank = 0; rank < world; rank++) {
    const shard = shardOf({ init, model, optimizer: train.optimizer, owner, placement, rank, world, seqLen: train.seqLen, runId: 'in-process' });
    await backends[rank]!.load(shard);
  }
  const replicas = placement && {
    placement,
    gradientValues: replicaGradientLength(model, replicatedExperts(placement, model.routedExperts)),
    layers: model.layers,
  };
  const executors = backends.map(
    (b, rank) => new StepExecutor(options.wrapBackend?.(b) ?? b, transports[rank]!, owner, undefined, options.fault ? new PlantedFault(options.fault) : undefined, replicas),
  );
  const replicaChecksums: ReplicaChecksum[][][] = [];
  const physicalCounts: number[] = [];
  const microBatches = options.microBatches ?? 1;
  const ops = buildSchedule({ kind: options.schedule, layers: model.layers, chunks: options.chunks ?? 1, microBatches });
  const ranges = splitSequences(train.batchSequences, world);
  const chain = new MarkovChain(model.vocabSize, train.dataSeed);
  const losses: number[] = [];
  const checksums: string[][] = [];
  const bytesSent = new Array<number>(world).fill(0);
  const linkBytes = Array.from({ length: world }, () => ({ intra: 0, inter: 0 }));
  for (let step = 0; step < train.steps; step++) {
    const batch = chain.batch(step, train.batchSequences, train.seqLen);
    const outcomes = await Promise.all(
      executors.map((executor, rank) => {
        const rankBatch = {
          step,
          inputs: sliceSequences(batch.inputs, train.seqLen, ranges[rank]!),
          targets: sliceSequences(batch.targets, train.seqLen, ranges[rank]!),
          globalTokens: train.batchSequences * train.seqLen,
          globalSequences: train.batchSequences,
        };
        return executor.run(
          ops,
          microBatchesOf(rankBatch, train.seqLen, microBatches),
          {
            dispatchCodec: options.dispatchCodec ?? 'f32',
            combineCodec: options.combineCodec ?? 'f32',
            timeoutMs: 10_000,
            allToAll: options.allToAll ?? 'flat',
            nodeSize: options.nodeSize ?? 0,
          },
        );
      }),
    );
    losses.push(outcomes.reduce((sum, o) => sum + o.lossSum, 0));
    checksums.push(outcomes.map((o) => o.checksum));
    replicaChecksums.push(outcomes.map((o) => o.replicaChecksums ?? []));
    for (const o of outcomes) o.physicalCounts?.forEach((c, i) => (physicalCounts[i] = (physicalCounts[i] ?? 0) + c));
    outcomes.forEach((o, rank) => {
      bytesSent[rank]! += o.bytesSent;
      linkBytes[rank]!.intra += o.linkBytes.intra;
      linkBytes[rank]!.inter += o.linkBytes.inter;
    });
  }
  const params = new Map<string, Tensor>();
  const copies = new Map<string, [number, Tensor][]>();
  const snapshots = await Promise.all(backends.map((b) => b.snapshot()));
  for (const p of snapshots[0]!.dense) params.set(p.name, p.tensor);
  snapshots.forEach((snap, rank) =>
    snap.experts.forEach((layer, l) => {
      for (const [id, named] of layer) {
        for (const p of named) {
          const name = expertParamName(l, id, p.name);
          copies.set(name, [...(copies.get(name) ?? []), [rank, p.tensor]]);
          if (owner[id] === rank) params.set(name, p.tensor);
        }
      }
    }),
  );
  await Promise.all([...backends.map((b) => b.close()), ...transports.map((t) => t.close())]);
  return { losses, checksums, params, bytesSent, linkBytes, replicaChecksums, physicalCounts, copies };
}

export function maxAbsDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): { max: number; name: string } {
  let max = 0;
  let name = '';
  for (const [key, ta] of a) {
    const tb = b.get(key);
    if (!tb) throw new Error(`parameter ${key} is missing on one side`);
    for (let i = 0; i < ta.data.length; i++) {
      const d = Math.abs(ta.data[i]! - tb.data[i]!);
      if (!(d <= max)) {
        max = d;
        name = key;
      }
    }
  }
  if (a.size !== b.size) throw new Error(`parameter sets differ: ${a.size} vs ${b.size}`);
  return { max, name };
}

/** What the reference mirrors of a `trainInProcess` run: its codec round trips, batch split and replica choices. */
export function mirrorOf(options: {
  train: TrainConfig;
  world: number;
  chunks?: number;
  dispatchCodec?: CodecName;
  combineCodec?: CodecName;
  /** Redundant experts: the placement, and the node size the run's steps used (0: one node). */
  placement?: ExpertPlacement;
  experts?: number;
  nodeSize?: number;
}): StepMirror {
  const split = tokenSplit(splitSequences(options.train.batchSequences, options.world), options.train.seqLen, options.chunks ?? 1, chunkTokenRange);
  const mirror: StepMirror = { rounding: codecRounding(options.dispatchCodec ?? 'f32', options.combineCodec ?? 'f32'), split };
  const { placement } = options;
  if (!placement) return mirror;
  const experts = options.experts ?? Math.max(...placement.physicalToLogical) + 1;
  const chooser = new ReplicaChooser(placement, experts, options.world, options.nodeSize ?? 0);
  const sourceOf = (token: number) => split.ranks.findIndex((r) => token >= r.begin && token < r.end);
  return {
    ...mirror,
    replicas: {
      replicated: replicatedExperts(placement, experts),
      holderOf: (token, expert) => {
        const source = sourceOf(token);
        return placement.physicalOwner[chooser.physicalOf(source, token - split.ranks[source]!.begin, expert)]!;
      },
    },
  };
}
