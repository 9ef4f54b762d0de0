import { LayoutError } from './errors';

/**
 * Which slots go to which rank. A slot is one (token, k) pair: slot = token * topK + k.
 * `slotsTo[d]`: the slot indices whose expert rank d owns, ascending (Int32Array [n_d]);
 * `slotCount`: S, the number of slots of the whole batch (not just the chunk).
 */
export interface DispatchLayout {
  slotsTo: Int32Array[];
  slotCount: number;
}

/**
 * Lays out a dispatch: for each destination rank, the slots in `range` whose expert it owns.
 * @param expertIds [S] global expert id of each slot; -1 means "no expert" (the slot is dropped).
 * @param expertOwner [E] rank holding each global expert.
 * @param range slots [begin, end) of one chunk; the whole batch when absent.
 * @param slotRanks [S] with redundant experts: the rank of the copy each slot goes to
 *   (ReplicaChooser), which wins over expertOwner; -1 exactly where expertIds has -1.
 * Throws LayoutError naming the slot, expert or rank that is out of range.
 */
export function dispatchLayout(
  expertIds: Int32Array,
  expertOwner: ArrayLike<number>,
  worldSize: number,
  range?: { begin: number; end: number },
  slotRanks?: Int32Array,
): DispatchLayout {
  const slotCount = expertIds.length;
  const begin = range?.begin ?? 0;
  const end = range?.end ?? slotCount;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new LayoutError(`worldSize ${worldSize} must be a positive integer`);
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || end > slotCount) {
    throw new LayoutError(`slot range [${begin}, ${end}) is not within the ${slotCount} slots`);
  }
  const experts = expertOwner.length;
  for (let e = 0; e < experts; e++) {
    const owner = expertOwner[e]!;
    if (!Number.isInteger(owner) || owner < 0 || owner >= worldSize) {
      throw new LayoutError(`expert ${e} is owned by rank ${owner}, outside 0..${worldSize - 1}`);
    }
  }
  if (slotRanks && slotRanks.length !== slotCount) throw new LayoutError(`${slotRanks.length} slot ranks for ${slotCount} slots`);
  const rankOf = (s: number, e: number) => (slotRanks ? slotRanks[s]! : expertOwner[e]!);
  const counts = new Int32Array(worldSize);
  for (let s = begin; s < end; s++) {
    const e = expertIds[s]!;
    if (e === -1) continue;
    if (e < 0 || e >= experts) throw new LayoutError(`slot ${s}: expert id ${e} is outside 0..${experts - 1} (-1 for none)`);
    const d = rankOf(s, e);
    if (!(d >= 0 && d < worldSize)) throw new LayoutError(`slot ${s} (expert ${e}) goes to rank ${d}, outside 0..${worldSize - 1}`);
    counts[d]!++;
  }
  const slotsTo = Array.from(counts, (n) => new Int32Array(n));
  const fill = new Int32Array(worldSize);
  for (let s = begin; s < end; s++) {
    const e = expertIds[s]!;
    if (e === -1) continue;
    const d = rankOf(s, e);
    slotsTo[d]![fill[d]!++] = s;
  }
  return { slotsTo, slotCount };
}
