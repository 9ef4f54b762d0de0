import type { OpRecordData } from '@moe/comm';

/** "experts L0.2", "shared L1", "allreduce": an op of a timeline, as a person reads it. */
export const opLabel = (r: OpRecordData): string => `${r.name}${r.layer >= 0 ? ` L${r.layer}` : ''}${r.chunk >= 0 ? `.${r.chunk}` : ''}`;

/**
 * The (comm op, compute op) pairs of one rank's step that were in flight together: their recorded
 * intervals intersect for more than zero time. An op that starts when another ends is not with it
 * (the executor records the end before a dependant starts). Structure, not speed.
 */
export function commUnderCompute(timeline: readonly OpRecordData[]): { comm: string; compute: string }[] {
  const comm = timeline.filter((r) => r.stream === 'comm');
  const compute = timeline.filter((r) => r.stream === 'compute');
  return comm.flatMap((c) =>
    compute.filter((k) => c.startMs < k.endMs && k.startMs < c.endMs).map((k) => ({ comm: opLabel(c), compute: opLabel(k) })),
  );
}
