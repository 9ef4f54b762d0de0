/**
 * Rebalancing during a training run: every `every` steps the scheduler recomputes the expert
 * placement with EPLB from a moving average of the measured expert loads and, when it changes,
 * moves each expert's weights and AdamW state to its new rank. The move goes through the
 * scheduler: FetchParams (with optimizer state) from every rank, then LoadShard with the new
 * owner map, the same path a checkpoint resume takes, so training goes on exactly as before.
 * With redundant experts every plan places the same number of extra copies (of the experts hot
 * at that moment), and every new holder of an expert gets the one copy's weights and state.
 */
import type { ModelConfig } from '@moe/model';
import {
  balancedPlacement,
  ExpertLoadAverage,
  holdersOf,
  placementImbalance,
  PlacementError,
  primaryOwner,
  rebalanceProblem,
  type ExpertPlacement,
} from '@moe/placement';
import { gatherOptimizerState, optimizerStateForRank } from './checkpoint';
import { assembleParams } from './parity';
import type { StepDriver } from './step-driver';
import { loadShardRequests, type ShardPlan } from './step-requests';

export interface RebalanceSettings {
  /** Recompute the placement after every `every` steps. */
  every: number;
  /** Weight of the past in the moving average of loads, in [0, 1). Default 0.5. */
  decay?: number;
}

/** One placement change. */
export interface RebalanceEvent {
  /** The change took effect before step `afterStep + 1`. */
  afterStep: number;
  /** [E] each expert's rank (with redundant experts: its first copy's) before and after. */
  from: number[];
  to: number[];
  /** The placements before and after, every physical copy with its rank. */
  fromPlacement: ExpertPlacement;
  toPlacement: ExpertPlacement;
  /** Expert copies now on a rank that held no copy of that expert before. */
  moved: number;
  /** max / mean tokens per rank of the moving-average loads, under `from` and under `to` (copies of an expert sharing its load evenly). */
  imbalanceBefore: number;
  imbalanceAfter: number;
}

export class Rebalancer {
  private readonly average: ExpertLoadAverage;

  /**
   * @param redundant physical experts beyond the logical ones each plan places (0: one copy each)
   * @throws PlacementError when the run's shape cannot rebalance (named)
   */
  constructor(
    private readonly model: ModelConfig,
    private readonly workers: number,
    private readonly nodeSize: number,
    readonly settings: RebalanceSettings,
    private readonly redundant = 0,
  ) {
    if (!Number.isInteger(settings.every) || settings.every < 1) throw new PlacementError(`rebalance every=${settings.every} must be a positive integer (steps)`);
    const problem = rebalanceProblem(model.routedExperts, { gpus: workers, nodeSize, groups: model.routerGroups }, redundant);
    if (problem) throw new PlacementError(problem);
    this.average = new ExpertLoadAverage(model.layers, model.routedExperts, settings.decay ?? 0.5);
  }

  /** Adds one step's [layers·E] counts (summed over ranks). */
  observe(expertCounts: readonly number[]): void {
    this.average.add(expertCounts);
  }

  /** Whether to rebalance after `step` (0-based) of a run of `steps`: every `every` steps, never after the last. */
  due(step: number, steps: number): boolean {
    return (step + 1) % this.settings.every === 0 && step + 1 < steps;
  }

  /** The new placement for `current`, or undefined when EPLB keeps every copy where it is or it would not lower the imbalance. */
  plan(current: ExpertPlacement, afterStep: number): RebalanceEvent | undefined {
    const E = this.model.routedExperts;
    const loads = this.average.loads();
    const next = balancedPlacement(loads, { gpus: this.workers, nodeSize: this.nodeSize, groups: this.model.routerGroups }, this.redundant).placement;
    const before = holdersOf(current, E);
    const moved = holdersOf(next, E).reduce((n, ranks, e) => n + ranks.filter((r) => !before[e]!.includes(r)).length, 0);
    const imbalanceBefore = placementImbalance(loads, current, this.workers);
    const imbalanceAfter = placementImbalance(loads, next, this.workers);
    // Moving experts costs a fetch and a reload of every shard: only for a plan that evens the load.
    if (moved === 0 || !(imbalanceAfter < imbalanceBefore)) return undefined;
    return {
      afterStep,
      from: primaryOwner(current, E),
      to: primaryOwner(next, E),
      fromPlacement: current,
      toPlacement: next,
      moved,
      imbalanceBefore,
      imbalanceAfter,
    };
  }
}

/**
 * Moves the experts from `event.fromPlacement` to `event.toPlacement`: every rank's parameters
 * and AdamW state are fetched from the shards loaded as `loadedRunId` (one copy of each expert),
 * and every rank is loaded again as `plan.runId` with the new placement, each holder of an expert
 * given the same weights and state. Returns the dense checksum.
 */
export async function moveExperts(driver: StepDriver, loadedRunId: string, plan: Omit<ShardPlan, 'owner'>, event: RebalanceEvent): Promise<string> {
  const replies = await driver.fetchParams(loadedRunId, true);
  const params = assembleParams(plan.model, replies, event.fromPlacement);
  const optimizer = gatherOptimizerState(replies);
  const requests = loadShardRequests({ ...plan, owner: event.toPlacement }, params);
  requests.forEach((r, rank) => (r.optimizerState = optimizerStateForRank(optimizer, event.toPlacement, rank)));
  return driver.loadShards(requests);
}
