/**
 * Rebalancing during a run: a moving average of the measured expert loads, and the placement
 * EPLB gives for it. The workers hold one placement for every layer, so the plan balances the
 * loads summed over layers: one copy per expert (a permutation of the experts over the ranks,
 * balancedOwner) or with redundant copies of the hot ones (balancedPlacement); node-limited
 * routing's groups stay whole on one node when the hierarchical policy applies (groups % nodes == 0).
 */
import { PlacementError } from './errors';
import { imbalance, rebalanceExperts, type EplbPlan } from './eplb';
import { expectedTokensPerRank, placementFromPlan, type ExpertPlacement } from './expert-placement';

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

/**
 * Why a run cannot be balanced by EPLB, before it starts; undefined when it can.
 * @param redundant physical experts beyond the E logical ones (0: one copy of each)
 */
export function rebalanceProblem(experts: number, t: BalanceTopology, redundant = 0): string | undefined {
  if (!Number.isInteger(redundant) || redundant < 0) return `redundant experts=${redundant} must be an integer >= 0`;
  const physical = experts + redundant;
  if (physical % t.gpus !== 0) {
    return redundant === 0
      ? `rebalancing moves whole experts between ranks and needs the ${experts} experts to divide evenly over the ${t.gpus} workers`
      : `${experts} experts + ${redundant} redundant = ${physical} physical experts do not divide evenly over the ${t.gpus} workers (every rank holds as many)`;
  }
  if (t.nodeSize > 0 && t.gpus % t.nodeSize !== 0) return `nodeSize=${t.nodeSize} does not split the ${t.gpus} workers into whole nodes`;
  return undefined;
}

/**
 * The placement EPLB gives for `loads` ([layers][E], summed over layers) with `redundant` extra
 * physical experts (0: one copy of each, as balancedOwner). Hierarchical policy when the routing
 * groups split over the nodes (a group and its replicas stay on one node), global otherwise.
 */
export function balancedPlacement(loads: readonly (readonly number[])[], t: BalanceTopology, redundant = 0): { placement: ExpertPlacement; plan: EplbPlan } {
  const experts = loads[0]?.length ?? 0;
  const problem = rebalanceProblem(experts, t, redundant);
  if (problem) throw new PlacementError(problem);
  const total = Array.from({ length: experts }, (_, e) => loads.reduce((sum, row) => sum + row[e]!, 0));
  const nodes = t.nodeSize > 0 ? t.gpus / t.nodeSize : 1;
  const plan = rebalanceExperts([total], { replicas: experts + redundant, groups: t.groups, nodes, gpus: t.gpus });
  return { placement: placementFromPlan(plan, t.gpus), plan };
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

/** max / mean tokens per rank of `owner` (or of a placement, copies sharing evenly) under `loads`. */
export function placementImbalance(loads: readonly (readonly number[])[], owner: readonly number[] | ExpertPlacement, workers: number): number {
  return imbalance('physicalOwner' in owner ? expectedTokensPerRank(loads, owner, workers) : tokensPerRank(loads, owner, workers));
}
