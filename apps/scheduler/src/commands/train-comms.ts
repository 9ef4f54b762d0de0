/**
 * What `moe train` adds for DeepSeek's communication design: the flags (node-limited routing,
 * node size, all-to-all, rebalancing, load report), and what it prints and writes after the run
 * (bytes by link per rank, the placement changes, the expert-load heatmap).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parseModelConfig, type ModelConfig, type TrainConfig } from '@moe/model';
import { expertLoadReport, renderLoadHeatmapSvg, type ExpertLoadReport } from '@moe/report';
import { describePlacement, hasRedundantExperts, parseLoads, type ExpertPlacement } from '@moe/placement';
import { ALL_TO_ALL_MODE_NAMES, DEFAULT_STEP_SETTINGS, type AllToAllModeName } from '@moe/schedule';
import { deviceProfile, linkUsage } from '@moe/sim';
import { integer, nonNegativeNumber } from './flags';
import type { TrainingResult } from '../run/train-run';
import { ConfigFileError } from '../errors';

export interface CommsFlags {
  routerGroups?: number;
  routerGroupTopk?: number;
  nodeSize: number;
  allToAll: AllToAllModeName;
  rebalanceEvery?: number;
  rebalanceDecay?: number;
  loadReport?: string;
  redundantExperts?: number;
  expertLoads?: string;
}

export function addCommsOptions(command: Command): Command {
  return command
    .option('--router-groups <G>', 'node-limited routing: experts in G groups of consecutive ids, one per node (sets model.routerGroups)', integer('--router-groups', 1))
    .option('--router-group-topk <M>', 'node-limited routing: a token reaches at most M groups (sets model.routerGroupTopK)', integer('--router-group-topk', 1))
    .option('--node-size <n>', 'workers per modeled node (consecutive ranks); bytes are reported by link class from it (0: one node)', integer('--node-size', 0), DEFAULT_STEP_SETTINGS.nodeSize)
    .addOption(new Option('--all-to-all <mode>', 'flat: rows straight to the expert; hierarchical: across nodes once per token and node, then within the node').choices(ALL_TO_ALL_MODE_NAMES).default(DEFAULT_STEP_SETTINGS.allToAll))
    .option('--rebalance-every <k>', 'every k steps recompute the placement with EPLB from the measured loads and move the experts', integer('--rebalance-every', 1))
    .option('--rebalance-decay <x>', 'weight of the past in the moving average of loads (default 0.5)', nonNegativeNumber('--rebalance-decay'))
    .option('--load-report <dir>', 'write load.json (expert loads, tokens per GPU, imbalance, bytes by link) and load-heatmap.svg to <dir>')
    .option('--redundant-experts <n>', 'EPLB redundant experts: n physical copies beyond the experts (experts + n a multiple of --workers), placed from --expert-loads (else even loads) and re-planned at every --rebalance-every', integer('--redundant-experts', 1))
    .option('--expert-loads <file>', 'loads to plan the redundant experts from: [layers][experts] JSON, a report with "expertLoads", or a load.json of --load-report');
}

/** The loads file of --expert-loads, parsed as `moe plan` reads one. */
export function readExpertLoads(path: string): number[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(`cannot read --expert-loads ${path}: ${(error as Error).message}`);
  }
  return parseLoads(text, path);
}

/** The model with the routing flags applied (validated: a bad M or G is refused with the field named). */
export function withRouting(model: ModelConfig, flags: CommsFlags): ModelConfig {
  if (flags.routerGroups === undefined && flags.routerGroupTopk === undefined) return model;
  return parseModelConfig({ ...model, routerGroups: flags.routerGroups ?? model.routerGroups, routerGroupTopK: flags.routerGroupTopk ?? model.routerGroupTopK });
}

/** Load before the first rebalance (initial placement) and after the last one (final placement); with redundant experts, from the measured counts per copy. */
export function loadBeforeAndAfter(result: TrainingResult, model: ModelConfig): { before: ExpertLoadReport; after: ExpertLoadReport } {
  // Steps are indexed from the run's first (a resumed run starts later).
  const first = result.steps[0]?.step ?? 0;
  const firstChange = result.rebalances[0] ? result.rebalances[0].afterStep + 1 - first : result.steps.length;
  const lastChange = result.rebalances.at(-1) ? result.rebalances.at(-1)!.afterStep + 1 - first : 0;
  const W = result.workers.length;
  const load = (steps: TrainingResult['steps'], owner: number[], placement: ExpertPlacement) =>
    expertLoadReport(
      steps.map((s) => s.expertCounts),
      model.layers,
      owner,
      W,
      hasRedundantExperts(placement, model.routedExperts) ? { ...placement, stepCounts: steps.map((s) => s.physicalCounts ?? []) } : undefined,
    );
  return {
    before: load(result.steps.slice(0, firstChange), result.owner, result.placement),
    after: load(result.steps.slice(lastChange), result.finalOwner, result.finalPlacement),
  };
}

/** Prints bytes by link per rank (per token, and modeled time on the profile's links) and the placement changes. */
export function printComms(result: TrainingResult, model: ModelConfig, train: TrainConfig, profileName = 'H800'): void {
  const W = result.workers.length;
  const steps = result.steps.length;
  if (steps === 0) return;
  const bytes = Array.from({ length: W }, (_, r) => ({
    intra: result.steps.reduce((sum, s) => sum + s.linkBytes[r]!.intra, 0),
    inter: result.steps.reduce((sum, s) => sum + s.linkBytes[r]!.inter, 0),
  }));
  const use = linkUsage(bytes, result.ranges.map((r) => r.count * train.seqLen * steps), steps, deviceProfile(profileName));
  const s = result.settings;
  console.log(`all-to-all bytes by link (${s.allToAll}, ${s.nodeSize > 0 ? `nodes of ${s.nodeSize}` : 'one node'}; modeled time per step on ${profileName} links):`);
  use.forEach((u, r) =>
    console.log(
      `  rank ${r}: intra ${u.intra.bytesPerToken.toFixed(0)} B/token (${u.intra.modeledMs.toFixed(4)} ms)  inter ${u.inter.bytesPerToken.toFixed(0)} B/token (${u.inter.modeledMs.toFixed(4)} ms)`,
    ),
  );
  for (const e of result.rebalances) {
    console.log(`rebalanced after step ${e.afterStep + 1}: ${e.moved} expert copies moved, imbalance ${e.imbalanceBefore.toFixed(3)} -> ${e.imbalanceAfter.toFixed(3)} (moving-average loads)`);
  }
  const redundant = hasRedundantExperts(result.finalPlacement, model.routedExperts);
  if (redundant) console.log(`redundant experts (final placement): ${describePlacement(result.finalPlacement, W)}`);
  if (result.rebalances.length > 0) {
    const { before, after } = loadBeforeAndAfter(result, model);
    console.log(`measured imbalance (max/mean tokens per GPU): ${before.overallImbalance.toFixed(3)} before the first rebalance, ${after.overallImbalance.toFixed(3)} after the last`);
  } else if (redundant) {
    console.log(`measured imbalance (max/mean tokens per GPU, copies counted where their tokens went): ${loadBeforeAndAfter(result, model).after.overallImbalance.toFixed(3)}`);
  }
}

/** Writes load.json and load-heatmap.svg (the final placement's steps) to `dir`; returns the paths. */
export function writeLoadReport(dir: string, result: TrainingResult, model: ModelConfig): string[] {
  mkdirSync(dir, { recursive: true });
  const { before, after } = loadBeforeAndAfter(result, model);
  const json = join(dir, 'load.json');
  const svg = join(dir, 'load-heatmap.svg');
  const linkBytes = result.steps.map((s) => s.linkBytes);
  writeFileSync(json, JSON.stringify({ settings: result.settings, model, before, after, rebalances: result.rebalances, linkBytes }, null, 2));
  writeFileSync(svg, renderLoadHeatmapSvg(result.rebalances.length > 0 ? after : before, result.rebalances.length > 0 ? 'Expert load after the last rebalance' : 'Expert load'));
  return [json, svg];
}
