/**
 * Several ranks in one process: inline cpu backends over in-memory transports, driven exactly
 * as the scheduler drives worker processes. For fast parity tests of the executor and schedules.
 */
import { codecRounding, createInMemoryTransports, type CodecName } from '@moe/comm';
import {
  MarkovChain,
  expertParamName,
  initParams,
  type ModelConfig,
  type StepMirror,
  type Tensor,
  type TrainConfig,
} from '@moe/model';
import { sliceSequences, splitSequences, tokenSplit } from '@moe/placement';
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
}

export async function trainInProcess(options: {
  model: ModelConfig;
  train: TrainConfig;
  owner: number[];
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
  const { model, train, owner, world } = options;
  const init = initParams(model);
  options.mutateParams?.(init);
  const transports = createInMemoryTransports(world);
  const backends = Array.from({ length: world }, () => new CpuBackend({ inline: true }));
  for (let rank = 0; rank < world; rank++) {
    const shard = shardOf({ init, model, optimizer: train.optimizer, owner, rank, world, seqLen: train.seqLen, runId: 'in-process' });
    await backends[rank]!.load(shard);
  }
  const executors = backends.map(
    (b, rank) => new StepExecutor(options.wrapBackend?.(b) ?? b, transports[rank]!, owner, undefined, options.fault ? new PlantedFault(options.fault) : undefined),
  );
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
    outcomes.forEach((o, rank) => {
      bytesSent[rank]! += o.bytesSent;
      linkBytes[rank]!.intra += o.linkBytes.intra;
      linkBytes[rank]!.inter += o.linkBytes.inter;
    });
  }
  const params = new Map<string, Tensor>();
  const snapshots = await Promise.all(backends.map((b) => b.snapshot()));
  for (const p of snapshots[0]!.dense) params.set(p.name, p.tensor);
  snapshots.forEach((snap) =>
    snap.experts.forEach((layer, l) => {
      for (const [id, named] of layer) for (const p of named) params.set(expertParamName(l, id, p.name), p.tensor);
    }),
  );
  await Promise.all([...backends.map((b) => b.close()), ...transports.map((t) => t.close())]);
  return { losses, checksums, params, bytesSent, linkBytes };
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

/** What the reference mirrors of a `trainInProcess` run: its codec round trips and batch split. */
export function mirrorOf(options: {
  train: TrainConfig;
  world: number;
  chunks?: number;
  dispatchCodec?: CodecName;
  combineCodec?: CodecName;
}): StepMirror {
  return {
    rounding: codecRounding(options.dispatchCodec ?? 'f32', options.combineCodec ?? 'f32'),
    split: tokenSplit(splitSequences(options.train.batchSequences, options.world), options.train.seqLen, options.chunks ?? 1, chunkTokenRange),
  };
}
