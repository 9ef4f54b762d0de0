/**
 * Expert placement: which rank holds each routed expert. Pure; the same plan holds for every
 * layer (expert e of every layer lives on the same rank).
 *
 * More workers than experts is allowed: a rank that owns no expert still holds its slice of the
 * batch, routes its tokens to the owners and receives (empty) frames, so it takes part in every
 * all-to-all. A plan is refused only when it cannot be carried out at all.
 */
import { PlacementError } from './errors';

/** A placement rule, or an explicit owner rank per expert ([E], one entry per global expert id). */
export type Placement = 'contiguous' | 'round-robin' | readonly number[];

export const PLACEMENT_RULES = ['contiguous', 'round-robin'] as const;

function assertCount(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) throw new PlacementError(`${what}=${value} must be a positive integer`);
}

/**
 * Owner rank of every expert.
 *
 * - `contiguous`: rank r holds a contiguous block of expert ids; blocks differ by at most one,
 *   the larger ones first (8 experts on 3 ranks: [0,0,0,1,1,1,2,2], i.e. 3,3,2).
 * - `round-robin`: expert e on rank e % workers (8 on 3: [0,1,2,0,1,2,0,1]).
 * - a list: taken as given after checking it has one rank below `workers` per expert.
 *
 * @param experts routed experts per layer (E)
 * @param workers ranks in the run (W)
 * @returns [E] owner rank of each global expert id, each in 0..W-1
 */
export function planExperts(experts: number, workers: number, placement: Placement = 'contiguous'): number[] {
  assertCount(experts, 'experts');
  assertCount(workers, 'workers');
  if (typeof placement !== 'string') {
    if (placement.length !== experts) {
      throw new PlacementError(`placement lists ${placement.length} owners but the model has ${experts} experts; give one rank per expert`);
    }
    placement.forEach((rank, expert) => {
      if (!Number.isInteger(rank) || rank < 0 || rank >= workers) {
        throw new PlacementError(`placement[${expert}]=${rank} is not a rank of this run (0..${workers - 1})`);
      }
    });
    return [...placement];
  }
  switch (placement) {
    case 'contiguous': {
      const base = Math.floor(experts / workers);
      const larger = experts % workers; // the first `larger` ranks hold base + 1
      const owner: number[] = [];
      for (let rank = 0; rank < workers; rank++) {
        const count = base + (rank < larger ? 1 : 0);
        for (let i = 0; i < count; i++) owner.push(rank);
      }
      return owner;
    }
    case 'round-robin':
      return Array.from({ length: experts }, (_, e) => e % workers);
    default:
      throw new PlacementError(`placement "${String(placement)}" is not one of ${PLACEMENT_RULES.join(', ')} or a list of ranks`);
  }
}

/**
 * A `--placement` argument: a rule name, or a comma-separated owner rank per expert ("0,0,1,1").
 * The list is checked against the model and the world later, by `planExperts`.
 */
export function parsePlacement(text: string): Placement {
  const trimmed = text.trim();
  if ((PLACEMENT_RULES as readonly string[]).includes(trimmed)) return trimmed as Placement;
  const parts = trimmed.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new PlacementError(
      `placement "${text}" is not one of ${PLACEMENT_RULES.join(', ')} or a comma-separated list of ranks (e.g. 0,0,1,1)`,
    );
  }
  return parts.map(Number);
}

/** [W] number of experts each rank owns under `owner`. */
export function expertsPerRank(owner: readonly number[], workers: number): number[] {
  const counts = new Array<number>(workers).fill(0);
  for (const rank of owner) counts[rank]!++;
  return counts;
}
