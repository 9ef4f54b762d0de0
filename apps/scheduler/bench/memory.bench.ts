/**
 * Bounded memory under skewed routing (a benchmark, not a test):
 *
 *   npx tsx apps/scheduler/bench/memory.bench.ts [--tokens 512] [--hidden 1024] [--steps 8]
 *
 * Starts a local cluster of 4 `sim` workers and runs a few steps with uniform (balanced) routing,
 * then a fresh cluster with fully skewed routing (every token's top-k slots go to rank 0's
 * experts), and prints each worker's peak RSS (RunStepResponse.peak_rss_bytes) for both cases,
 * with the bytes the hot rank receives per step.
 */
import { parseArgs } from 'node:util';
import { NAIVE } from '@moe/schedule';
import { parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { runTraining, type TrainingResult } from '../src/run/train-run';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '512' },
    hidden: { type: 'string', default: '1024' },
    steps: { type: 'string', default: '8' },
    workers: { type: 'string', default: '4' },
  },
});
const workers = Number(values.workers);
const tokensPerRank = Number(values.tokens);
const hiddenSize = Number(values.hidden);
const steps = Number(values.steps);

// 2 experts per rank and top-2: under skew rank 0 owns exactly the k experts every token picks.
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 2 * workers, topK: 2, layers: 2, balancing: 'none' });
// The real batch holds tokensPerRank tokens per rank (sequences of 128), the rows the sim routes.
const train = parseTrainConfig({ ...TINY_TRAIN, batchSequences: (tokensPerRank / 128) * workers, seqLen: 128, steps });
const BYTES_PER_VALUE = 4; // f32 codecs both ways

async function run(routing: 'uniform' | 'skewed'): Promise<TrainingResult> {
  return runTraining({
    model,
    train,
    workers,
    backend: 'sim',
    backendOptions: {
      profile: 'H800',
      dilation: 1,
      routing,
      model: { hiddenSize, expertFfnSize: 2 * hiddenSize, routedExperts: model.routedExperts },
    },
    step: { schedule: NAIVE },
    stepTimeoutMs: 120_000,
  });
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const results: Record<string, TrainingResult> = {};
for (const routing of ['uniform', 'skewed'] as const) {
  const t0 = performance.now();
  results[routing] = await run(routing);
  console.error(`${routing}: ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const last = (r: TrainingResult) => r.steps.at(-1)!;
const slotRowBytes = tokensPerRank * model.topK * hiddenSize * BYTES_PER_VALUE;
// Per step and layer, rows cross the wire four times (dispatch, combine, and both backward). Uniform:
// each rank receives (W-1)/W of its own slots' rows each time. Skewed: rank 0 receives every other
// rank's rows on the dispatch and its backward (its own combine stays local).
const receivedUniform = ((workers - 1) / workers) * slotRowBytes * 4 * model.layers;
const hotReceivedSkewed = (workers - 1) * slotRowBytes * 2 * model.layers;
console.log(`workers=${workers} tokensPerRank=${tokensPerRank} hidden=${hiddenSize} topK=${model.topK} layers=${model.layers} steps=${steps} codec=f32`);
console.log('');
console.log('| rank | peak RSS uniform (MiB) | peak RSS skewed (MiB) | sent/step uniform (MiB) | sent/step skewed (MiB) |');
console.log('|-----:|-----------------------:|----------------------:|------------------------:|-----------------------:|');
for (let r = 0; r < workers; r++) {
  const u = last(results.uniform!);
  const s = last(results.skewed!);
  console.log(`| ${r}${r === 0 ? ' (hot)' : ''} | ${mib(u.peakRssBytes[r]!)} | ${mib(s.peakRssBytes[r]!)} | ${mib(u.bytesSent[r]!)} | ${mib(s.bytesSent[r]!)} |`);
}
console.log('');
console.log(`expert rows received per step by rank 0: uniform ≈ ${mib(receivedUniform)} MiB, skewed = ${mib(hotReceivedSkewed)} MiB (${(hotReceivedSkewed / 1e6).toFixed(1)} MB)`);
const measuredHot = last(results.skewed!).bytesSent.slice(1).reduce((x, y) => x + y, 0);
console.log(`skewed: bytes ranks 1..${workers - 1} sent (all to rank 0) per step: ${mib(measuredHot)} MiB`);
const hotPeaks = (r: TrainingResult) => r.steps.map((st) => mib(st.peakRssBytes[0]!)).join(' -> ');
console.log(`rank 0 peak RSS after each step (MiB): uniform ${hotPeaks(results.uniform!)}; skewed ${hotPeaks(results.skewed!)}`);
console.log(`losses uniform ${results.uniform!.losses.map((l) => l.toFixed(3)).join(' ')}; skewed ${results.skewed!.losses.map((l) => l.toFixed(3)).join(' ')}`);
const counts = last(results.skewed!).expertCounts;
console.log(`skewed expert counts (last step, layer 0): ${counts.slice(0, model.routedExperts).join(' ')}`);
