/**
 * A placement with redundant experts (EPLB): P physical experts, each a copy of one logical
 * expert held by one rank, the same for every layer. A plain owner map [E] is the placement with
 * one physical expert per logical one (`singleCopy`). Shapes: E logical experts, P physical
 * experts (P >= E), W ranks.
 */
import { PlacementError } from './errors';
import type { EplbPlan } from './eplb';

export interface ExpertPlacement {
  /** [P] logical expert of each physical expert. */
  physicalToLogical: number[];
  /** [P] rank holding each physical expert. */
  physicalOwner: number[];
}

/** The placement of an owner map [E]: physical expert e is logical expert e on rank owner[e]. */
export function singleCopy(owner: readonly number[]): ExpertPlacement {
  return { physicalToLogical: owner.map((_, e) => e), physicalOwner: [...owner] };
}

/** An owner map [E] as its single-copy placement; a placement as is. */
export function asPlacement(p: readonly number[] | ExpertPlacement): ExpertPlacement {
  return 'physicalOwner' in p ? p : singleCopy(p);
}

/** Whether `p` holds more physical experts than logical ones (E), i.e. needs the replica fields on the wire. */
export function hasRedundantExperts(p: ExpertPlacement, experts: number): boolean {
  return p.physicalToLogical.length > experts;
}

/**
 * Checks `p` against the model and the world: P >= E entries in both maps, every logical id
 * below E and present at least once, every rank below W.
 * @throws PlacementError naming the entry that is wrong
 */
export function checkPlacement(p: ExpertPlacement, experts: number, workers: number): void {
  const P = p.physicalToLogical.length;
  if (p.physicalOwner.length !== P) throw new PlacementError(`placement: ${P} physical experts but ${p.physicalOwner.length} owner ranks; give one rank per physical expert`);
  if (P < experts) throw new PlacementError(`placement: ${P} physical experts cannot hold the model's ${experts} experts`);
  const seen = new Array<boolean>(experts).fill(false);
  for (let q = 0; q < P; q++) {
    const e = p.physicalToLogical[q]!;
    const r = p.physicalOwner[q]!;
    if (!Number.isInteger(e) || e < 0 || e >= experts) throw new PlacementError(`placement: physical expert ${q} is a copy of expert ${e}, outside 0..${experts - 1}`);
    if (!Number.isInteger(r) || r < 0 || r >= workers) throw new PlacementError(`placement: physical expert ${q} is on rank ${r}, not a rank of this run (0..${workers - 1})`);
    seen[e] = true;
  }
  const missing = seen.indexOf(false);
  if (missing >= 0) throw new PlacementError(`placement: expert ${missing} has no physical copy; every expert needs at least one`);
}

/** [E] the rank of each expert's first physical copy (lowest index): the single-copy owner map a replica-unaware reader sees. */
export function primaryOwner(p: ExpertPlacement, experts: number): number[] {
  const owner = new Array<number>(experts).fill(-1);
  p.physicalToLogical.forEach((e, q) => {
    if (owner[e] === -1) owner[e] = p.physicalOwner[q]!;
  });
  return owner;
}

/** [E] the distinct ranks holding a copy of each expert, ascending. */
export function holdersOf(p: ExpertPlacement, experts: number): number[][] {
  const sets = Array.from({ length: experts }, () => new Set<number>());
  p.physicalToLogical.forEach((e, q) => sets[e]!.add(p.physicalOwner[q]!));
  return sets.map((s) => [...s].sort((a, b) => a - b));
}

/** Experts held by more than one rank, ascending: the ones whose gradients ranks sum and whose copies are checksummed. */
export function replicatedExperts(p: ExpertPlacement, experts: number): number[] {
  return holdersOf(p, experts).flatMap((ranks, e) => (ranks.length > 1 ? [e] : []));
}

/** Whether `rank` holds a copy of `expert`. */
export function holds(p: ExpertPlacement, rank: number, expert: number): boolean {
  return p.physicalToLogical.some((e, q) => e === expert && p.physicalOwner[q] === rank);
}

/** Layer `layer` of an EPLB plan over `gpus` GPUs as a placement (physical p on GPU floor(p / (P / gpus))). */
export function placementFromPlan(plan: EplbPlan, gpus: number, layer = 0): ExpertPlacement {
  const row = plan.physicalToLogical[layer];
  if (!row) throw new PlacementError(`the plan has no layer ${layer}`);
  const perGpu = row.length / gpus;
  return { physicalToLogical: [...row], physicalOwner: row.map((_, q) => Math.floor(q / perGpu)) };
}

/**
 * [W] tokens each rank processes when every copy of an expert takes an equal share of its load,
 * from loads [layers][E] summed over layers: the planner's estimate (the measured split is in
 * the workers' physical counts).
 */
export function expectedTokensPerRank(loads: readonly (readonly number[])[], p: ExpertPlacement, workers: number): number[] {
  const experts = loads[0]?.length ?? 0;
  const copies = new Array<number>(experts).fill(0);
  for (const e of p.physicalToLogical) copies[e]!++;
  const out = new Array<number>(workers).fill(0);
  for (const row of loads) p.physicalToLogical.forEach((e, q) => (out[p.physicalOwner[q]!]! += row[e]! / copies[e]!));
  return out;
}

/** The placement as text: one entry per rank, "r0: e0 e8 | r1: e1 e0' ..." (a prime marks a second or later copy). */
export function describePlacement(p: ExpertPlacement, workers: number): string {
  const seen = new Set<number>();
  const perRank = Array.from({ length: workers }, () => [] as string[]);
  p.physicalToLogical.forEach((e, q) => {
    perRank[p.physicalOwner[q]!]!.push(`e${e}${seen.has(e) ? "'" : ''}`);
    seen.add(e);
  });
  return perRank.map((list, r) => `r${r}: ${list.join(' ') || '-'}`).join(' | ');
}
