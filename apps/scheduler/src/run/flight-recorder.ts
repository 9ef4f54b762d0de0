/**
 * The collective watchdog: after a step fails or times out, every rank's flight recorder (its
 * last ops, running ones included) says which ranks entered which collective op and which never
 * did. Pure: formatting only; `StepDriver` gathers the records.
 */
import type { FlightOpOut, FlightRecordResponseOut } from '@moe/comm';

/** The ops whose every rank must take part: all-to-alls and the all-reduce. */
const COLLECTIVES = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd', 'allreduce']);

/** At most this many collective ops are described (the earliest incomplete ones). */
const MAX_OPS = 6;

const STATE_WORD: Record<string, string> = { running: 'waiting', failed: 'failed', done: 'done' };

/** `dispatch L1 C0`, `allreduce`. */
export function opLabel(op: Pick<FlightOpOut, 'kind' | 'layer' | 'chunk'>): string {
  return `${op.kind}${op.layer >= 0 ? ` L${op.layer}` : ''}${op.chunk >= 0 ? ` C${op.chunk}` : ''}`;
}

const ranksWord = (ranks: readonly number[]) => `${ranks.length === 1 ? 'rank' : 'ranks'} ${ranks.join(', ')}`;

/**
 * One summary of every rank's flight record (index = rank; undefined: the rank did not answer),
 * for the last step any rank reached in run `runId`, e.g.
 * `flight recorder, step 3: dispatch L1 C0 entered by ranks 0, 1 (waiting), not entered by rank 2 (last op: experts L0 C1 running)`.
 * Ops of other runs (an earlier run on the same workers, an earlier bench sub-run) are left out,
 * and so are ops every rank finished. Steps are step indices, as everywhere (the first step is
 * step 0). Returns '' when no rank answered with an op of the run. `runId` undefined: every op.
 */
export function formatFlightRecords(all: readonly (FlightRecordResponseOut | undefined)[], runId?: string): string {
  const records = all.map((r) => (r && runId !== undefined ? { ...r, ops: r.ops.filter((o) => o.runId === runId) } : r));
  const answered = records.flatMap((r, rank) => (r && r.ops.length ? [rank] : []));
  if (answered.length === 0) return '';
  const step = Math.max(...answered.flatMap((rank) => records[rank]!.ops.map((o) => o.step)));
  const silent = records.flatMap((r, rank) => (r ? [] : [rank]));

  // Collective ops of the step, in the order they were first entered on any rank.
  const entered = new Map<string, { first: number; label: string; byRank: Map<number, FlightOpOut> }>();
  for (const rank of answered) {
    for (const op of records[rank]!.ops) {
      if (op.step !== step || !COLLECTIVES.has(op.kind)) continue;
      const label = opLabel(op);
      const entry = entered.get(label) ?? { first: op.startMs, label, byRank: new Map<number, FlightOpOut>() };
      entry.first = Math.min(entry.first, op.startMs);
      entry.byRank.set(rank, op);
      entered.set(label, entry);
    }
  }
  const lastOp = (rank: number): string => {
    const ops = records[rank]?.ops ?? [];
    if (ops.length === 0) return 'no ops recorded';
    const last = ops.reduce((a, b) => (b.startMs >= a.startMs ? b : a));
    return `last op: ${last.step !== step ? `step ${last.step} ` : ''}${opLabel(last)} ${last.state}`;
  };

  const lines: string[] = [];
  const ops = [...entered.values()].sort((a, b) => a.first - b.first);
  for (const { label, byRank } of ops) {
    const complete = silent.length === 0 && answered.every((r) => byRank.get(r)?.state === 'done');
    if (complete) continue;
    const byState = new Map<string, number[]>();
    for (const [rank, op] of [...byRank].sort((a, b) => a[0] - b[0])) byState.set(op.state, [...(byState.get(op.state) ?? []), rank]);
    const inside = [...byState].map(([state, ranks]) => `${ranksWord(ranks)} (${STATE_WORD[state] ?? state})`).join(', ');
    const missing = answered.filter((r) => !byRank.has(r));
    const parts = [`${label} entered by ${inside}`];
    if (missing.length) parts.push(`not entered by ${missing.map((r) => `rank ${r} (${lastOp(r)})`).join(', ')}`);
    if (silent.length) parts.push(`no record from ${ranksWord(silent)}`);
    lines.push(parts.join(', '));
  }
  const shown = lines.slice(0, MAX_OPS);
  if (lines.length > shown.length) shown.push(`${lines.length - shown.length} more ops not shown`);
  if (shown.length === 0) shown.push('every rank that answered finished every collective op it entered');
  const silentNote = silent.length ? ` (${ranksWord(silent)} did not answer FlightRecord: stopped, hung or gone)` : '';
  return `flight recorder, step ${step}${silentNote}: ${shown.join('; ')}`;
}
