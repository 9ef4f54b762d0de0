/**
 * Rebalancing during a training run: every `every` steps the scheduler recomputes the expert
 * placement with EPLB from a moving average of the measured expert loads and, when it changes,
 * moves each expert's weights and AdamW state to its new rank. The move goes through the
 * scheduler: FetchParams (with optimizer state) from every rank, then LoadShard with the new
 * owner map, the same path a checkpoint resume takes, so training goes on exactly as before.
 */
import type { ModelConfig } from '@moe/model';
import { balancedOwner, ExpertLoadAverage, placementImbalance, rebalanceProblem, PlacementError } from '@moe/placement';
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
  from: number[];
  to: number[];
  /** Experts that changed rank. */
  moved: number;
  /** max / mean tokens per rank of the moving-average loads, under `from` and under `to`. */
  imbalanceBefore: number;
  imbalanceAfter: number;
}

export class Rebalancer {
  private readonly average: ExpertLoadAverage;

  /** @throws PlacementError when the run's shape cannot rebalance (named) */
  constructor(
    private readonly model: ModelConfig,
    private readonly workers: number,
    private readonly nodeSize: number,
    readonly settings: RebalanceSettings,
  ) {
    if (!Number.isInteger(settings.every) || settings.every < 1) throw new PlacementError(`rebalance every=${settings.every} must be a positive integer (steps)`);
    const problem = rebalanceProblem(model.routedExperts, { gpus: workers, nodeSize, groups: model.routerGroups });
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

  /** The new placement for `owner`, or undefined when EPLB keeps it or it would not lower the imbalance. */
  plan(owner: readonly number[], afterStep: number): RebalanceEvent | undefined {
    const loads = this.average.loads();
    const next = balancedOwner(loads, { gpus: this.workers, nodeSize: this.nodeSize, groups: this.model.routerGroups }).owner;
    const moved = next.filter((rank, e) => rank !== owner[e]).length;
    const imbalanceBefore = placementImbalance(loads, owner, this.workers);
    const imbalanceAfter = placementImbalance(loads, next, this.workers);
    // Moving experts costs a fetch and a reload of every shard: only for a plan that evens the load.
    if (moved === 0 || !(imbalanceAfter < imbalanceBefore)) return undefined;
    return { afterStep, from: [...owner], to: next, moved, imbalanceBefore, imbalanceAfter };
  }
}

/**
 * Moves the experts from `event.from` to `event.to`: every rank's parameters and AdamW state
 * are fetched from the shards loaded as `loadedRunId`, and every rank is loaded again as
 * `plan.runId` with the new owner map. Returns the dense checksum.
 */
export async function moveExperts(driver: StepDriver, loadedRunId: string, plan: Omit<ShardPlan, 'owner'>, event: RebalanceEvent): Promise<string> {
  const replies = await driver.fetchParams(loadedRunId, true);
  const params = assembleParams(plan.model, replies, event.from);
  const optimizer = gatherOptimizerState(replies);
  const requests = loadShardRequests({ ...plan, owner: event.to }, params);
  requests.forEach((r, rank) => (r.optimizerState = optimizerStateForRank(optimizer, event.to, rank)));
  return driver.loadShards(requests);
}
