/** `moe simulate`: one training step of a whole cluster on the discrete-event simulator, its figures and what training costs. */
import { lineLog, log } from '@moe/log';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { integer, numberList, positiveNumber } from './flags';
import { PIPELINE_SCHEDULE_NAMES } from '@moe/schedule';
import { ClusterConfigError, DEVICE_PROFILES, SIM_PRESETS, simPreset, simulateCluster, trainingCost, type ClusterSimConfig } from '@moe/sim';
import { EXIT, type OnError } from './exit';
import { buildSimulationReport, summaryLines, writeSimulationReport } from '../simulate/simulate-report';

interface SimulateFlags {
  preset: string;
  gpus?: number;
  pp?: number;
  ep?: number;
  dp?: number;
  nodeSize?: number;
  schedule?: string;
  microBatches?: number;
  tokensPerMicroBatch?: number;
  layers?: number;
  profile?: string;
  kernelEfficiency?: number;
  commSmShare?: number;
  price?: number;
  tokens?: number;
  traceRanks?: number[];
  out?: string;
}

/** `14.8T`, `500B`, `2e9`: a token count. */
const tokenCount = (value: string) => {
  const m = /^([\d.]+(?:e\d+)?)\s*([kMBT]?)$/i.exec(value.trim());
  const unit: Record<string, number> = { '': 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 };
  const n = m ? Number(m[1]) * unit[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`--tokens must be a positive count like 14.8T, 500B or 2e9, got "${value}"`);
  return n;
};

/** `0.15` or `20/132`: a share in [0, 1). */
const share = (value: string) => {
  const [a, b] = value.split('/').map(Number);
  const v = b === undefined ? a! : a! / b;
  if (!Number.isFinite(v) || v < 0 || v >= 1) throw new InvalidArgumentError(`--comm-sm-share must be in [0, 1) (like 0.15 or 20/132), got "${value}"`);
  return v;
};

const timestamp = () => new Date().toISOString().replace(/[:.]/g, '-').replace('Z', '');

/** The preset's config with the flags over it, and the sources of what the flags set. */
export function configFromFlags(flags: SimulateFlags): { config: ClusterSimConfig; sources: Record<string, string>; tokens: number; price: number } {
  const preset = simPreset(flags.preset);
  const base = preset.config;
  const sources = { ...preset.sources };
  const flagged = (key: string, flag: string) => (sources[key] = `flag ${flag}`);
  const layout = { ...base.layout };
  if (flags.pp !== undefined) (layout.pipelineRanks = flags.pp), flagged('layout.pipelineRanks', '--pp');
  if (flags.ep !== undefined) (layout.expertParallel = flags.ep), flagged('layout.expertParallel', '--ep');
  if (flags.nodeSize !== undefined) (layout.nodeSize = flags.nodeSize), flagged('layout.nodeSize', '--node-size');
  if (flags.gpus !== undefined) (layout.gpus = flags.gpus), flagged('layout.gpus', '--gpus');
  if (flags.dp !== undefined) {
    // DP counts expert-parallel groups in a stage: gpus = pp x ep x dp.
    const gpus = layout.pipelineRanks * layout.expertParallel * flags.dp;
    if (flags.gpus !== undefined && flags.gpus !== gpus) {
      throw new InvalidArgumentError(`--gpus ${flags.gpus} does not equal --pp ${layout.pipelineRanks} x --ep ${layout.expertParallel} x --dp ${flags.dp} = ${gpus}`);
    }
    layout.gpus = gpus;
    flagged('layout.gpus', '--dp (gpus = pp x ep x dp)');
  }
  const model = { ...base.model };
  if (flags.layers !== undefined) (model.layers = flags.layers), flagged('model.layers', '--layers');
  if (flags.kernelEfficiency !== undefined) (model.mfu = flags.kernelEfficiency), flagged('model.mfu', '--kernel-efficiency');
  const config: ClusterSimConfig = { ...base, model, layout };
  if (flags.schedule !== undefined) (config.schedule = flags.schedule), flagged('schedule', '--schedule');
  if (flags.microBatches !== undefined) (config.microBatches = flags.microBatches), flagged('microBatches', '--micro-batches');
  if (flags.tokensPerMicroBatch !== undefined) (config.tokensPerMicroBatch = flags.tokensPerMicroBatch), flagged('tokensPerMicroBatch', '--tokens-per-micro-batch');
  if (flags.profile !== undefined) (config.profile = flags.profile), flagged('profile', '--profile');
  if (flags.commSmShare !== undefined) (config.commSmShare = flags.commSmShare), flagged('commSmShare', '--comm-sm-share');
  if (flags.tokens !== undefined) flagged('trainingTokens', '--tokens');
  if (flags.price !== undefined) flagged('pricePerGpuHour', '--price');
  return { config, sources, tokens: flags.tokens ?? preset.trainingTokens, price: flags.price ?? preset.pricePerGpuHour };
}

export function addSimulateCommand(program: Command, onError: OnError): void {
  program
    .command('simulate')
    .description('simulate one training step of a whole cluster (pipeline, expert and data parallel) on a virtual clock; prints step time, bubble, exposed communication, MFU, tokens/s/GPU and the cost of a training run; writes a report folder')
    .addOption(new Option('--preset <name>', 'starting configuration').choices(SIM_PRESETS.map((p) => p.name)).default('deepseek-v3'))
    .option('--gpus <n>', 'GPUs in the cluster', integer('--gpus', 1))
    .option('--pp <n>', 'pipeline ranks (DualPipeV: 2 stages each)', integer('--pp', 1))
    .option('--ep <n>', 'expert-parallel GPUs a group', integer('--ep', 1))
    .option('--dp <n>', 'expert-parallel groups a stage (data-parallel replicas of the experts); sets --gpus = pp x ep x dp', integer('--dp', 1))
    .option('--node-size <n>', 'GPUs a node (NVLink inside, InfiniBand between)', integer('--node-size', 1))
    .addOption(new Option('--schedule <name>', 'pipeline schedule').choices([...PIPELINE_SCHEDULE_NAMES]))
    .option('--micro-batches <n>', 'micro-batches a pipeline runs per step', integer('--micro-batches', 1))
    .option('--tokens-per-micro-batch <n>', 'tokens each GPU holds in a micro-batch', integer('--tokens-per-micro-batch', 1))
    .option('--layers <n>', 'model layers', integer('--layers', 1))
    .addOption(new Option('--profile <name>', 'device profile').choices(Object.keys(DEVICE_PROFILES)))
    .option('--kernel-efficiency <f>', 'fraction of the dense peak compute kernels reach (cost model)', positiveNumber('--kernel-efficiency'))
    .option('--comm-sm-share <f>', 'share of SMs communication takes while it runs, e.g. 20/132', share)
    .option('--price <usd>', 'price per GPU-hour, USD', positiveNumber('--price'))
    .option('--tokens <n>', 'tokens of the training run to cost, e.g. 14.8T', tokenCount)
    .option('--trace-ranks <list>', 'pipeline ranks in trace.json (default: first, middle and last)', numberList('--trace-ranks', true))
    .option('--out <dir>', 'report folder (default reports/simulate-<timestamp>)')
    .action(async (flags: SimulateFlags) => {
      try {
        const { config, sources, tokens, price } = configFromFlags(flags);
        const result = simulateCluster(config);
        const peakRssMib = process.resourceUsage().maxRSS / 1024;
        const cost = trainingCost(result.tokensPerSecondPerGpu, result.layout.gpus, tokens, price);
        const command = ['npx moe simulate', ...process.argv.slice(3)].join(' ');
        const report = buildSimulationReport({ command, preset: flags.preset, sources, result, cost, peakRssMib });
        for (const line of summaryLines(report)) console.log(line);
        const ranks = result.plan.ranks;
        const traceRanks = (flags.traceRanks ?? [0, Math.floor(ranks / 2), ranks - 1]).filter((r, i, all) => r < ranks && all.indexOf(r) === i);
        const out = resolve(flags.out ?? join('reports', `simulate-${timestamp()}`));
        const files = await writeSimulationReport(out, report, result, traceRanks);
        console.log(`\nreport written to ${out}:`);
        for (const file of files) console.log(`  ${file}`);
        process.exitCode = 0;
      } catch (error) {
        if (error instanceof ClusterConfigError || error instanceof InvalidArgumentError) {
          // A layout that does not divide or contradicting flags: bad input, like a bad schedule.
          lineLog(log())(`moe: invalid input: ${error.message}`, { level: 'error', err: error });
          process.exitCode = EXIT.badInput;
        } else process.exitCode = onError(error);
      }
    });
}
