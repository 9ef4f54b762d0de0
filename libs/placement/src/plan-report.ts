/**
 * What `moe plan` prints: the loads file it reads, the plan as JSON, and a table a reader can
 * check by eye (per layer, each GPU's replicas with their share of the load, and the imbalance
 * with and without the plan).
 */
import { PlacementError } from './errors';
import { gpuLoads, imbalance, type EplbOptions, type EplbPlan } from './eplb';

/**
 * A loads file: `[[...], ...]` ([layers][experts] tokens per expert), one layer `[...]`, or an
 * object whose `expertLoads` (as report.json writes it) or `loads` field is either of those, or
 * a load.json of `moe train --load-report` (its `after.expertLoads`).
 */
export function parseLoads(text: string, source: string): number[][] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PlacementError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const after = o['after'] && typeof o['after'] === 'object' ? (o['after'] as Record<string, unknown>)['expertLoads'] : undefined;
    // load.json (moe train --load-report): the loads measured after the last rebalance.
    value = o['expertLoads'] ?? o['loads'] ?? after;
    if (value === undefined) throw new PlacementError(`${source}: an object needs an "expertLoads" or "loads" field ([layers][experts] numbers), or "after.expertLoads" as load.json has`);
  }
  if (!Array.isArray(value) || value.length === 0) throw new PlacementError(`${source}: expected a non-empty array of per-expert loads, or one array per layer`);
  const rows = (value.every((v) => typeof v === 'number') ? [value] : value) as unknown[];
  return rows.map((row, l) => {
    if (!Array.isArray(row) || row.length === 0 || !row.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
      throw new PlacementError(`${source}: layer ${l} must be a non-empty array of finite loads >= 0`);
    }
    return row as number[];
  });
}

/** [layers][gpus] loads when expert e sits alone on GPU floor(e·gpus/E): the placement without redundancy. */
export function contiguousGpuLoads(weight: readonly (readonly number[])[], gpus: number): number[][] {
  return weight.map((row) => {
    const loads = new Array<number>(gpus).fill(0);
    row.forEach((w, e) => (loads[Math.floor((e * gpus) / row.length)]! += w));
    return loads;
  });
}

export interface PlanSummary {
  options: EplbOptions;
  policy: EplbPlan['policy'];
  physicalToLogical: number[][];
  logicalToPhysical: number[][][];
  logicalCount: number[][];
  /** [layers][gpus] expected tokens per GPU under the plan. */
  gpuLoads: number[][];
  /** [layers] max/mean tokens per GPU: contiguous placement without replicas, and under the plan. */
  imbalanceBefore: number[];
  imbalanceAfter: number[];
}

export function planSummary(weight: readonly (readonly number[])[], options: EplbOptions, plan: EplbPlan): PlanSummary {
  const loads = gpuLoads(weight, plan, options.gpus);
  return {
    options,
    policy: plan.policy,
    physicalToLogical: plan.physicalToLogical,
    logicalToPhysical: plan.logicalToPhysical,
    logicalCount: plan.logicalCount,
    gpuLoads: loads,
    imbalanceBefore: contiguousGpuLoads(weight, options.gpus).map(imbalance),
    imbalanceAfter: loads.map(imbalance),
  };
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** The plan as text: per layer, one line per GPU ("gpu 0 (node 0): e5 82.5, e6 39 | 121.5"). */
export function formatPlan(weight: readonly (readonly number[])[], summary: PlanSummary): string {
  const { gpus, nodes, replicas } = summary.options;
  const perGpu = replicas / gpus;
  const lines = [`policy ${summary.policy}: ${replicas} replicas on ${gpus} GPUs in ${nodes} node(s), ${perGpu} per GPU`];
  summary.physicalToLogical.forEach((row, l) => {
    lines.push(
      `layer ${l}: imbalance (max/mean tokens per GPU) ${summary.imbalanceBefore[l]!.toFixed(3)} without replicas -> ${summary.imbalanceAfter[l]!.toFixed(3)} with this plan`,
    );
    for (let g = 0; g < gpus; g++) {
      const cells = row.slice(g * perGpu, (g + 1) * perGpu).map((e) => `e${e} ${num(weight[l]![e]! / summary.logicalCount[l]![e]!)}`);
      lines.push(`  gpu ${String(g).padStart(2)} (node ${Math.floor(g / (gpus / nodes))}): ${cells.join(', ').padEnd(perGpu * 12)} | ${num(summary.gpuLoads[l]![g]!)}`);
    }
    const replicated = summary.logicalCount[l]!.flatMap((c, e) => (c > 1 ? [`e${e} x${c}`] : []));
    lines.push(`  replicated: ${replicated.length ? replicated.join(', ') : 'none'}`);
  });
  return lines.join('\n');
}
