/**
 * How far a run with lossy wire codecs drifts from the f32 trajectory (a figure, not a test):
 *
 *   npx tsx apps/scheduler/bench/codec-drift.bench.ts [--steps 40] [--seeds 3] [--workers 4] [--layers 3] [--chunks 1] [--json out.json]
 *
 * For each codec mode and data seed it trains the reference twice on the same batches: once in
 * f32, once with the mode's round trips and the run's batch split mirrored (runMirror). Since
 * `--check-reference` holds a distributed run to that mirrored reference bit for bit (parameter
 * difference 0 measured), these are the distributed run's trajectories, without starting one.
 * Prints, per mode, the worst per-step relative loss difference, the mean over the last 10 steps
 * of the loss difference, and the largest parameter difference at the end, worst over the seeds.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { CombineCodecName, DispatchCodecName } from '@moe/schedule';
import { parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN, trainReference } from '@moe/model';
import { splitSequences } from '@moe/placement';
import { namedParams } from '@moe/model';
import { runMirror } from '../src/run/parity-mirror';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '40' },
    seeds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '4' },
    layers: { type: 'string', default: '3' },
    chunks: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const steps = Number(values.steps);
const workers = Number(values.workers);
const chunks = Number(values.chunks);
const model = parseModelConfig({ ...TINY_MODEL, layers: Number(values.layers) });
const MODES: [DispatchCodecName, CombineCodecName][] = [
  ['bf16', 'f32'],
  ['fp8', 'f32'],
  ['f32', 'bf16'],
  ['bf16', 'bf16'],
  ['fp8', 'bf16'],
];

interface Drift {
  dispatchCodec: DispatchCodecName;
  combineCodec: CombineCodecName;
  worstStepRelative: number;
  lastTenMeanRelative: number;
  maxParamAbsolute: number;
}

const rows: Drift[] = MODES.map(([dispatchCodec, combineCodec]) => ({ dispatchCodec, combineCodec, worstStepRelative: 0, lastTenMeanRelative: 0, maxParamAbsolute: 0 }));
for (let seed = 0; seed < Number(values.seeds); seed++) {
  const train = parseTrainConfig({ ...TINY_TRAIN, steps, dataSeed: TINY_TRAIN.dataSeed + seed });
  const ranges = splitSequences(train.batchSequences, workers);
  const f32 = trainReference(model, train, { mirror: runMirror({ dispatchCodec: 'f32', combineCodec: 'f32', chunks }, ranges, train.seqLen) });
  const f32Params = namedParams(f32.params);
  for (const row of rows) {
    const lossy = trainReference(model, train, { mirror: runMirror({ ...row, chunks }, ranges, train.seqLen) });
    const relative = lossy.losses.map((l, i) => Math.abs(l - f32.losses[i]!) / f32.losses[i]!);
    const lastTen = lossy.losses.slice(-10);
    const lastTenMean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const meanDiff = Math.abs(lastTenMean(lastTen) - lastTenMean(f32.losses.slice(-10))) / lastTenMean(f32.losses.slice(-10));
    let maxParam = 0;
    for (const [name, t] of namedParams(lossy.params)) {
      const e = f32Params.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) maxParam = Math.max(maxParam, Math.abs(t.data[i]! - e[i]!));
    }
    row.worstStepRelative = Math.max(row.worstStepRelative, ...relative);
    row.lastTenMeanRelative = Math.max(row.lastTenMeanRelative, meanDiff);
    row.maxParamAbsolute = Math.max(row.maxParamAbsolute, maxParam);
  }
}

const settings = `${steps} steps, ${values.seeds} data seeds, ${workers} workers, ${model.layers} layers (tiny model otherwise), ${chunks} chunk(s)`;
console.log(`codec drift from the f32 trajectory: ${settings}\n`);
console.log('| dispatch | combine | worst step, relative loss | last 10 steps mean, relative | final params, max abs |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.dispatchCodec} | ${r.combineCodec} | ${r.worstStepRelative.toExponential(1)} | ${r.lastTenMeanRelative.toExponential(1)} | ${r.maxParamAbsolute.toExponential(1)} |`);
}
if (values.json) writeFileSync(values.json, JSON.stringify({ settings: { steps, seeds: Number(values.seeds), workers, chunks, model }, drift: rows }, null, 2));
