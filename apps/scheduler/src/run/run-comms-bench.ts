/**
 * The communication bench of DeepSeek's design, on simulated GPUs: step time and bytes by link
 * (inter-node bytes per token above all) for the flat and the hierarchical all-to-all, against
 * the node limit M of node-limited routing. One local cluster of `sim` workers serves every
 * setting; each setting is a short training run on it (the sim backend times compute on the
 * modeled device and shapes every frame to the profile's NVLink / InfiniBand bandwidth).
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type ModelConfig } from '@moe/model';
import { median } from '@moe/report';
import { deviceProfile, linkUsage } from '@moe/sim';
import type { AllToAllModeName } from '@moe/schedule';
import { LocalCluster } from '../control/local-cluster';
import { runTraining } from './train-run';

export interface CommsBenchOptions {
  workers: number;
  /** Ranks per modeled node. */
  nodeSize: number;
  profile: string;
  /** Routed experts; grouped into one group per node. */
  experts: number;
  topK: number;
  /** Node limits M to sweep (each <= the number of nodes). */
  groupTopKs: number[];
  modes: AllToAllModeName[];
  warmupSteps: number;
  measuredSteps: number;
  /** Modeled width of a token row on the wire. */
  hiddenSize: number;
  tokensPerRank: number;
  dilation: number;
  /** Multiplies the modeled compute (the sim backend's computeScale): small keeps the sweep short. */
  computeScale: number;
  log?: (line: string) => void;
}

export const COMMS_BENCH_DEFAULTS: CommsBenchOptions = {
  workers: 8,
  nodeSize: 2,
  profile: 'H800',
  experts: 16,
  topK: 4,
  groupTopKs: [1, 2, 3, 4],
  modes: ['flat', 'hierarchical'],
  warmupSteps: 1,
  measuredSteps: 3,
  hiddenSize: 512,
  tokensPerRank: 128,
  dilation: 50,
  computeScale: 0.05,
};

export interface CommsBenchRow {
  mode: AllToAllModeName;
  groupTopK: number;
  /** Median over the measured steps, ms (dilated, as measured). */
  stepMs: number;
  /** Mean over ranks of all-to-all bytes per routed token, per step's tokens. */
  interBytesPerToken: number;
  intraBytesPerToken: number;
  /** Mean over ranks of the modeled (undilated) time per step on each link class, ms. */
  interModeledMs: number;
  intraModeledMs: number;
  /** [W] per rank: inter-node bytes per token. */
  interBytesPerTokenByRank: number[];
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Runs every (mode, M) setting and returns one row each, in sweep order. */
export async function runCommsBench(options: CommsBenchOptions): Promise<{ rows: CommsBenchRow[]; config: Record<string, unknown> }> {
  const o = options;
  const nodes = o.workers / o.nodeSize;
  if (!Number.isInteger(nodes)) throw new RangeError(`--node-size ${o.nodeSize} does not split ${o.workers} workers into whole nodes`);
  const profile = deviceProfile(o.profile, '--profile');
  if (!Number.isInteger((o.tokensPerRank * o.workers) / TINY_TRAIN.seqLen)) {
    throw new RangeError(`--tokens ${o.tokensPerRank} per rank on ${o.workers} workers is not a whole number of sequences of ${TINY_TRAIN.seqLen}`);
  }
  const cluster = await LocalCluster.start({ workers: o.workers, backend: 'sim', log: o.log });
  const rows: CommsBenchRow[] = [];
  try {
    for (const groupTopK of o.groupTopKs) {
      const model: ModelConfig = parseModelConfig({ ...TINY_MODEL, routedExperts: o.experts, topK: o.topK, routerGroups: nodes, routerGroupTopK: groupTopK });
      for (const mode of o.modes) {
        const result = await runTraining({
          model,
          // Real batches of tokensPerRank tokens a rank: the executor sizes its slots from the batch.
          train: { ...TINY_TRAIN, batchSequences: (o.tokensPerRank * o.workers) / TINY_TRAIN.seqLen, steps: o.warmupSteps + o.measuredSteps },
          workers: o.workers,
          cluster,
          step: { allToAll: mode, nodeSize: o.nodeSize },
          backendOptions: { profile: o.profile, dilation: o.dilation, computeScale: o.computeScale, nodeSize: o.nodeSize, model: { hiddenSize: o.hiddenSize } },
        });
        const measured = result.steps.slice(o.warmupSteps);
        const bytes = Array.from({ length: o.workers }, (_, r) => ({
          intra: measured.reduce((sum, s) => sum + s.linkBytes[r]!.intra, 0),
          inter: measured.reduce((sum, s) => sum + s.linkBytes[r]!.inter, 0),
        }));
        const use = linkUsage(bytes, new Array<number>(o.workers).fill(o.tokensPerRank * measured.length), measured.length, profile);
        const row: CommsBenchRow = {
          mode,
          groupTopK,
          stepMs: median(measured.map((s) => s.stepMs)),
          interBytesPerToken: mean(use.map((u) => u.inter.bytesPerToken)),
          intraBytesPerToken: mean(use.map((u) => u.intra.bytesPerToken)),
          interModeledMs: mean(use.map((u) => u.inter.modeledMs)),
          intraModeledMs: mean(use.map((u) => u.intra.modeledMs)),
          interBytesPerTokenByRank: use.map((u) => u.inter.bytesPerToken),
        };
        rows.push(row);
        o.log?.(formatCommsRow(row));
      }
    }
  } finally {
    await cluster.stop();
  }
  const { log: _log, ...config } = o;
  return { rows, config: { ...config, nodes, routerGroups: nodes } };
}

export const COMMS_HEADER = 'mode          M   step_ms  inter B/token  intra B/token  inter ms (modeled)  intra ms (modeled)';

export function formatCommsRow(r: CommsBenchRow): string {
  return `${r.mode.padEnd(12)} ${String(r.groupTopK).padStart(2)} ${r.stepMs.toFixed(1).padStart(9)} ${r.interBytesPerToken.toFixed(0).padStart(14)} ${r.intraBytesPerToken.toFixed(0).padStart(14)} ${r.interModeledMs.toFixed(4).padStart(19)} ${r.intraModeledMs.toFixed(4).padStart(19)}`;
}
