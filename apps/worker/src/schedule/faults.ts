/**
 * Planted faults, for tests only: each is a real bug a distributed step could have, switched on
 * by name (env MOE_FAULT, never set by default) so a test can prove the parity check catches it.
 * The executor asks the fault at a few points; with no fault nothing changes.
 *
 * | name            | bug it plants                                                              |
 * |-----------------|----------------------------------------------------------------------------|
 * | drop-peer-rows  | rank 0 drops the rows peer 1 sends back in each forward combine            |
 * | wrong-expert    | rank 0 sends remote rows to another expert of the right rank               |
 * | skip-rank-grads | rank 1's gradients are left out of the reduce-scatter                      |
 * | average-grads   | every rank averages the reduced gradients instead of summing them          |
 * | stale-chunk     | rank 0's last chunk of each combine holds the previous step's rows         |
 * | unsummed-replica-grads   | every rank updates its copies of a replicated expert with its own gradient, not the holders' sum |
 * | divergent-replica-choice | rank 0 sends each token to another copy than the choice rule says (the rule every rank and the reference share) |
 *
 * The last two act only on a placement with redundant experts (REPLICA_FAULT_NAMES).
 *
 * When a schedule or a placement brings a new way to be wrong, its fault joins this table.
 */
import type { DispatchLayout } from '@moe/comm';
import type { RoutedRows } from '@moe/model';

export const FAULT_ENV = 'MOE_FAULT';
/** Faults that break any placement. */
export const SINGLE_COPY_FAULT_NAMES = ['drop-peer-rows', 'wrong-expert', 'skip-rank-grads', 'average-grads', 'stale-chunk'] as const;
/** Faults of redundant experts: they change nothing where every expert has one copy. */
export const REPLICA_FAULT_NAMES = ['unsummed-replica-grads', 'divergent-replica-choice'] as const;
export const FAULT_NAMES = [...SINGLE_COPY_FAULT_NAMES, ...REPLICA_FAULT_NAMES] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export class UnknownFaultError extends Error {
  override readonly name = 'UnknownFaultError';
  constructor(value: string) {
    super(`${FAULT_ENV}=${JSON.stringify(value)} is not a planted fault; known: ${FAULT_NAMES.join(', ')} (unset it for a normal run)`);
  }
}

/** The fault named by env MOE_FAULT, undefined when unset or empty; an unknown name is refused. */
export function faultFromEnv(env: NodeJS.ProcessEnv = process.env): PlantedFault | undefined {
  const value = env[FAULT_ENV]?.trim();
  if (!value) return undefined;
  if (!(FAULT_NAMES as readonly string[]).includes(value)) throw new UnknownFaultError(value);
  return new PlantedFault(value as FaultName);
}

/** One planted fault and the little state it needs (stale-chunk remembers last step's rows). */
export class PlantedFault {
  /** layer -> the last chunk's slot rows of the previous step (stale-chunk). */
  private readonly previous = new Map<number, Float32Array>();

  constructor(readonly name: FaultName) {}

  /**
   * Expert ids to send with dispatched rows (forward and its backward, so the two agree): for
   * wrong-expert on rank 0, each row bound for another rank goes to the next expert that rank holds.
   * @param ids [S] global expert per slot; @param owner [E] rank of each expert
   */
  expertIds(rank: number, ids: Int32Array, owner: readonly number[]): Int32Array {
    if (this.name !== 'wrong-expert' || rank !== 0) return ids;
    const byRank = new Map<number, number[]>();
    owner.forEach((r, e) => byRank.set(r, [...(byRank.get(r) ?? []), e]));
    return ids.map((e) => {
      if (e < 0 || owner[e] === rank) return e;
      const held = byRank.get(owner[e]!)!;
      return held[(held.indexOf(e) + 1) % held.length]!;
    });
  }

  /**
   * After a forward combine wrote the routed rows ([S, H] per slot, or [T, H] per token when the
   * all-to-all sums them): drop-peer-rows zeroes the rows of the slots peer 1 served (per token:
   * the whole row of each token with such a slot); stale-chunk puts back the previous step's rows
   * of the last chunk.
   * @param slots [begin, end) the chunk's slot range; @param last whether it is the step's last chunk
   */
  afterCombine(rank: number, layer: number, layout: DispatchLayout, slots: { begin: number; end: number }, last: boolean, routed: RoutedRows, hidden: number, topK: number): void {
    if (rank !== 0) return;
    const rowOf = (s: number) => (routed.form === 'tokens' ? Math.floor(s / topK) : s);
    const rows = routed.rows;
    if (this.name === 'drop-peer-rows' && layout.slotsTo.length > 1) {
      for (const s of layout.slotsTo[1]!) rows.fill(0, rowOf(s) * hidden, (rowOf(s) + 1) * hidden);
    }
    if (this.name === 'stale-chunk' && last) {
      const [begin, end] = routed.form === 'tokens' ? [slots.begin / topK, slots.end / topK] : [slots.begin, slots.end];
      const now = rows.slice(begin * hidden, end * hidden);
      const before = this.previous.get(layer);
      rows.set(before && before.length === now.length ? before : new Float32Array(now.length), begin * hidden);
      this.previous.set(layer, now);
    }
  }

  /** The vector this rank puts into the all-reduce: zeros from rank 1 under skip-rank-grads. */
  beforeReduce(rank: number, gradients: Float32Array): Float32Array {
    return this.name === 'skip-rank-grads' && rank === 1 ? new Float32Array(gradients.length) : gradients;
  }

  /**
   * The reduced vector the update uses: divided by the world size under average-grads; under
   * unsummed-replica-grads its last `replicaValues` values (the replicated experts' summed
   * gradients) are this rank's own `gradients` again.
   */
  afterReduce(reduced: Float32Array, worldSize: number, gradients?: Float32Array, replicaValues = 0): Float32Array {
    if (this.name === 'average-grads') return reduced.map((v) => v / worldSize);
    if (this.name === 'unsummed-replica-grads' && gradients && replicaValues > 0) {
      const out = reduced.slice();
      out.set(gradients.subarray(gradients.length - replicaValues), reduced.length - replicaValues);
      return out;
    }
    return reduced;
  }

  /** Added to the token index the replica choice uses: 1 on rank 0 under divergent-replica-choice, else 0. */
  replicaTokenShift(rank: number): number {
    return this.name === 'divergent-replica-choice' && rank === 0 ? 1 : 0;
  }
}
