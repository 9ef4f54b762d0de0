/**
 * Rebalancing during a run: a moving average of the measured expert loads, and the expert owner
 * map EPLB gives for it. The workers hold one placement for every layer, so the plan balances
 * the loads summed over layers, with one replica per expert (a permutation of the experts over
 * the ranks, `replicas = experts`); node-limited routing's groups stay whole on one node when
 * the hierarchical policy applies (groups % nodes == 0).
 */
import { PlacementError } from './errors';
import { imbalance, rebalanceExperts, type EplbPlan } from './eplb';

/**
 * Exponential moving average of per-expert token counts: avg = decay·avg + (1 - decay)·counts,
 * the first sample taken as is. Counts are [layers·E] as workers report them (layer-major).
 */
export class ExpertLoadAverage {
  private readonly avg: Float64Array;
  private samples = 0;
  constructor(
    readonly layers: number,
    readonly experts: number,
    /** Weight of the past, in [0, 1). */
    readonly decay: number,
  ) {
    if (!(decay >= 0 && decay < 1)) throw new PlacementError(`load average decay=${decay} must be in [0, 1)`);
    this.avg = new Float64Array(layers * experts);
  }

  add(counts: ArrayLike<number>): void {
    if (counts.length !== this.avg.length) throw new PlacementError(`load sample has ${counts.length} counts, expected layers*experts = ${this.layers}*${this.experts}`);
    const keep = this.samples === 0 ? 0 : this.decay;
    for (let i = 0; i < counts.length; i++) this.avg[i] = keep * this.avg[i]! + (1 - keep) * counts[i]!;
    this.samples++;
  }

  /** [layers][E] the average so far (zeros before any sample). */
  loads(): number[][] {
    return Array.from({ length: this.layers }, (_, l) => Array.from(this.avg.subarray(l * this.experts, (l + 1) * this.experts)));
  }
}

export interface BalanceTopology {
  /** Ranks (GPUs). */
  gpus: number;
  /** Ranks per node (consecutive); 0: one node. */
  nodeSize: number;
  /** Expert groups of node-limited routing (1: ungrouped). */
  groups: number;
}

/** Why a run cannot rebalance, before it starts; undefined when it can. */
export function rebalanceProblem(experts: number, t: BalanceTopology): string | undefined {
  if (experts % t.gpus !== 0) return `rebalancing moves whole experts between ranks and needs the ${experts} experts to divide evenly over the ${t.gpus} workers`;
  if (t.nodeSize > 0 && t.gpus % t.nodeSize !== 0) return `nodeSize=${t.nodeSize} does not split the ${t.gpus} workers into whole nodes`;
  return undefined;
}

/**
 * The owner map EPLB gives for `loads` ([layers][E], summed over layers), one replica per expert.
 * @returns owner: [E] rank of each expert; plan: EPLB's output for the one summed "layer"
 */
export function balancedOwner(loads: readonly (readonly number[])[], t: BalanceTopology): { owner: number[]; plan: EplbPlan } {
  const experts = loads[0]?.length ?? 0;
  const problem = rebalanceProblem(experts, t);
  if (problem) throw new PlacementError(problem);
  const total = Array.from({ length: experts }, (_, e) => loads.reduce((sum, row) => sum + row[e]!, 0));
  const nodes = t.nodeSize > 0 ? t.gpus / t.nodeSize : 1;
  const plan = rebalanceExperts([total], { replicas: experts, groups: t.groups, nodes, gpus: t.gpus });
  const perGpu = experts / t.gpus;
  const owner = new Array<number>(experts);
  plan.physicalToLogical[0]!.forEach((e, p) => (owner[e] = Math.floor(p / perGpu)));
  return { owner, plan };
}

/** [W] tokens each rank's experts process, from loads [layers][E] summed over layers. */
export function tokensPerRank(loads: readonly (readonly number[])[], owner: readonly number[], workers: number): number[] {
  const out = new Array<number>(workers).fill(0);
  for (const row of loads) row.forEach((w, e) => (out[owner[e]!]! += w));
  return out;
}

/** max / mean tokens per rank of `owner` under `loads`. */
export function placementImbalance(loads: readonly (readonly number[])[], owner: readonly number[], workers: number): number {
  return imbalance(tokensPerRank(loads, owner, workers));
}
