/** `moe bench`: flags, a progress bar, the table, and where the report went. */
import { lineLog, log } from '@moe/log';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { integer, nonNegativeNumber, numberList, positiveNumber } from './flags';
import { EXIT, stopOnSignals, type OnError } from './exit';
import { formatTable, predictionLine } from '@moe/report';
import { COMBINE_CODECS, DISPATCH_CODECS } from '@moe/schedule';
import { BENCH_DEFAULTS, BENCH_QUICK, runBench, type BenchOptions } from '../run/run-bench';
import { defaultRedundantExperts } from '../run/bench-load';
import { formatReplay, replayBench } from '../run/bench-replay';

interface BenchFlags {
  workers: number;
  ratios?: number[];
  chunks?: number[];
  fbChunks?: number[];
  microBatches?: number;
  tokensPerRank?: number;
  warmup?: number;
  steps?: number;
  profile: string;
  dispatchCodec: BenchOptions['dispatchCodec'];
  combineCodec: BenchOptions['combineCodec'];
  hidden: number;
  nodeSize: number;
  commTarget?: number;
  transportSeconds?: number;
  quick: boolean;
  redundantExperts?: number;
  replay: boolean;
  out?: string;
  progress: boolean;
}


const timestamp = () => new Date().toISOString().replace(/[:.]/g, '-').replace('Z', '');

/** Adds `bench` to `program`; the action sets `process.exitCode`. */
export function addBenchCommand(program: Command, onError: OnError): void {
  program
    .command('bench')
    .description(
      'benchmark the naive, overlapped and fb-overlap all-to-all schedules (same global batch, same micro-batches) on a local cluster of simulated GPUs (sim workers) over a sweep of compute-to-communication ratios; writes a report folder',
    )
    .option('--workers <n>', 'sim worker processes', integer('--workers', 1), BENCH_DEFAULTS.workers)
    .option('--ratios <list>', `compute-to-communication ratios (default ${BENCH_DEFAULTS.ratios.join(',')})`, numberList('--ratios', false))
    .option('--chunks <list>', `chunk counts of the overlapped schedule (default ${BENCH_DEFAULTS.chunks.join(',')}; --quick ${BENCH_QUICK.chunks!.join(',')})`, numberList('--chunks', true))
    .option('--fb-chunks <list>', `chunk counts of the fb-overlap schedule (default ${BENCH_DEFAULTS.fbChunks.join(',')}; --quick ${BENCH_QUICK.fbChunks!.join(',')})`, numberList('--fb-chunks', true))
    .option('--micro-batches <n>', `micro-batches per step, every schedule (default ${BENCH_DEFAULTS.microBatches})`, integer('--micro-batches', 1))
    .option('--tokens-per-rank <n>', `modeled tokens a rank holds in a step, over all its micro-batches (default ${BENCH_DEFAULTS.tokensPerRank})`, integer('--tokens-per-rank', 1))
    .option('--warmup <n>', `warm-up steps per run, not measured (default ${BENCH_DEFAULTS.warmupSteps}); 0 also skips the warm-up run of each schedule before the calibration`, integer('--warmup'))
    .option('--steps <n>', `measured steps per run (default ${BENCH_DEFAULTS.measuredSteps}; --quick ${BENCH_QUICK.measuredSteps})`, integer('--steps', 1))
    .addOption(new Option('--dispatch-codec <codec>', 'wire format of dispatched tokens').choices(DISPATCH_CODECS).default(BENCH_DEFAULTS.dispatchCodec))
    .addOption(new Option('--combine-codec <codec>', 'wire format of combined outputs and of gradients').choices(COMBINE_CODECS).default(BENCH_DEFAULTS.combineCodec))
    .option('--profile <name>', 'device profile the workers model: H800, H100, H200, A100', BENCH_DEFAULTS.profile)
    .option('--hidden <n>', 'modeled hidden size: the width of every token row on the wire', integer('--hidden', 1), BENCH_DEFAULTS.hiddenSize)
    .option('--node-size <n>', 'workers per modeled node (NVLink inside, network between)', integer('--node-size', 1), BENCH_DEFAULTS.nodeSize)
    .option('--comm-target <ms>', `all-to-all time of one naive step, sets the time dilation (default ${BENCH_DEFAULTS.commTargetMs}; --quick ${BENCH_QUICK.commTargetMs})`, positiveNumber('--comm-target'))
    .option('--transport-seconds <s>', 'scale of the all-to-all measurement on raw TCP and every data plane: each rank sends seconds x 50 MB a run (0 skips it)', nonNegativeNumber('--transport-seconds'))
    .option('--redundant-experts <n>', `the skewed-routing comparison: naive at the headline ratio with every token's top-${BENCH_DEFAULTS.skewedTopK} on rank 0's experts, then with n redundant experts planned by EPLB from its loads (default ${BENCH_DEFAULTS.redundantExperts}, or the next count that spreads evenly over the workers; 0 skips it)`, integer('--redundant-experts', 0))
    .option('--quick', 'fewer chunk counts, steps and a shorter comm target: about 2 minutes on 2 cores, against 4 to 5 for the default', false)
    .option('--replay', 'no processes: print the rows the cost and link models alone give (the same op lists on the simulator, no host costs), in a second', false)
    .option('--out <dir>', 'report folder (default reports/<timestamp>)')
    .option('--no-progress', 'no progress bar')
    .action(async (flags: BenchFlags) => {
      const preset = { ...BENCH_DEFAULTS, ...(flags.quick ? BENCH_QUICK : {}) };
      const out = resolve(flags.out ?? join('reports', timestamp()));
      const options: BenchOptions = {
        ...preset,
        workers: flags.workers,
        ratios: flags.ratios ?? preset.ratios,
        chunks: flags.chunks ?? preset.chunks,
        fbChunks: flags.fbChunks ?? preset.fbChunks,
        microBatches: flags.microBatches ?? preset.microBatches,
        tokensPerRank: flags.tokensPerRank ?? preset.tokensPerRank,
        warmupSteps: flags.warmup ?? preset.warmupSteps,
        measuredSteps: flags.steps ?? preset.measuredSteps,
        profile: flags.profile,
        dispatchCodec: flags.dispatchCodec,
        combineCodec: flags.combineCodec,
        hiddenSize: flags.hidden,
        nodeSize: flags.nodeSize,
        commTargetMs: flags.commTarget ?? preset.commTargetMs,
        transportSeconds: flags.transportSeconds ?? preset.transportSeconds,
        redundantExperts: flags.redundantExperts ?? defaultRedundantExperts(flags.workers),
        out,
        command: ['npx moe bench', ...process.argv.slice(3)].join(' '),
      };
      if (flags.replay) {
        console.log(formatReplay(replayBench(options)));
        process.exitCode = EXIT.ok;
        return;
      }
      const showBar = flags.progress && process.stderr.isTTY;
      const bar = new cliProgress.SingleBar(
        { format: 'bench [{bar}] {value}/{total} runs | {label}', hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      const logLine = lineLog(log());
      const abort = new AbortController();
      const release = stopOnSignals(() => abort.abort(new Error('interrupted')));
      try {
        const result = await runBench({
          ...options,
          signal: abort.signal,
          log: (line, fields) => (showBar && started ? undefined : logLine(line, fields)),
          onProgress: (done, total, label) => {
            if (showBar) {
              if (!started) bar.start(total, 0, { label });
              started = true;
              bar.update(done, { label });
            } else logLine(`[${done}/${total}] ${label}`, { done, total });
          },
        });
        if (started) bar.stop();
        console.log(formatTable(result.report));
        const predicted = predictionLine(result.report);
        if (predicted) console.log(predicted);
        console.log(`\nreport written to ${out}:`);
        for (const file of Object.values(result.files)) console.log(`  ${file}`);
        process.exitCode = EXIT.ok;
      } catch (error) {
        if (started) bar.stop();
        process.exitCode = onError(error);
      } finally {
        release();
      }
    });
}
