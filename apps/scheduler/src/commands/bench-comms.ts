/** `moe bench-comms`: flat vs hierarchical all-to-all against the node limit M, on simulated GPUs. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { integer, numberList, positiveNumber } from './flags';
import { COMMS_BENCH_DEFAULTS, COMMS_HEADER, runCommsBench } from '../run/run-comms-bench';

interface Flags {
  workers: number;
  nodeSize: number;
  profile: string;
  experts: number;
  topK: number;
  m?: number[];
  steps: number;
  warmup: number;
  hidden: number;
  tokens: number;
  dilation: number;
  computeScale: number;
  out?: string;
}

export function addBenchCommsCommand(program: Command, onError: (error: unknown) => number): void {
  const d = COMMS_BENCH_DEFAULTS;
  program
    .command('bench-comms')
    .description('step time and bytes by link (inter-node bytes per token) of the flat and the hierarchical all-to-all against the node limit M of node-limited routing, on sim workers')
    .option('--workers <n>', 'sim worker processes', integer('--workers', 1), d.workers)
    .option('--node-size <n>', 'workers per modeled node; the experts form one group per node', integer('--node-size', 1), d.nodeSize)
    .option('--profile <name>', 'device profile (its NVLink and InfiniBand speeds shape the links)', d.profile)
    .option('--experts <n>', 'routed experts', integer('--experts', 1), d.experts)
    .option('--top-k <n>', 'experts per token', integer('--top-k', 1), d.topK)
    .option('--m <list>', `node limits to sweep (default 1..nodes, at most ${d.groupTopKs.length})`, numberList('--m', true))
    .option('--steps <n>', 'measured steps per setting', integer('--steps', 1), d.measuredSteps)
    .option('--warmup <n>', 'warm-up steps per setting', integer('--warmup'), d.warmupSteps)
    .option('--hidden <n>', 'modeled width of a token row on the wire', integer('--hidden', 1), d.hiddenSize)
    .option('--tokens <n>', 'tokens per rank per step', integer('--tokens', 1), d.tokensPerRank)
    .option('--dilation <x>', 'time dilation of modeled devices and links', positiveNumber('--dilation'), d.dilation)
    .option('--compute-scale <x>', 'multiplies the modeled compute', positiveNumber('--compute-scale'), d.computeScale)
    .option('--out <dir>', 'write comms.json (config and rows) to <dir>')
    .action(async (f: Flags) => {
      try {
        const nodes = Math.floor(f.workers / f.nodeSize);
        const groupTopKs = f.m ?? Array.from({ length: Math.min(4, nodes) }, (_, i) => i + 1);
        console.log(COMMS_HEADER);
        const { rows, config } = await runCommsBench({
          ...d,
          workers: f.workers,
          nodeSize: f.nodeSize,
          profile: f.profile,
          experts: f.experts,
          topK: f.topK,
          groupTopKs,
          warmupSteps: f.warmup,
          measuredSteps: f.steps,
          hiddenSize: f.hidden,
          tokensPerRank: f.tokens,
          dilation: f.dilation,
          computeScale: f.computeScale,
          log: (line) => (line.startsWith('flat') || line.startsWith('hierarchical') ? console.log(line) : undefined),
        });
        console.log('(step_ms: median, dilated; B/token: all-to-all bytes a rank sends per token it routes, mean over ranks; ms (modeled): undilated time on the profile\'s links per step)');
        if (f.out) {
          const dir = resolve(f.out);
          mkdirSync(dir, { recursive: true });
          writeFileSync(join(dir, 'comms.json'), JSON.stringify({ schema: 'moe-bench-comms/1', config, rows }, null, 2));
          console.log(`wrote ${join(dir, 'comms.json')}`);
        }
        process.exitCode = 0;
      } catch (error) {
        process.exitCode = onError(error);
      }
    });
}
