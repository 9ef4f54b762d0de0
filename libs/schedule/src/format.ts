import type { Op } from './ops';

/** `experts L1 C0` (plus ` M1` when the op belongs to micro-batch 1; micro-batch 0 and step-wide ops print none). */
export function opLabel(op: Pick<Op, 'kind' | 'layer' | 'chunk' | 'microBatch'>): string {
  return `${op.kind}${op.layer >= 0 ? ` L${op.layer}` : ''}${op.chunk >= 0 ? ` C${op.chunk}` : ''}${op.microBatch > 0 ? ` M${op.microBatch}` : ''}`;
}

/** `  5 compute experts L1 C0          <- dispatch L1 C0`, one line an op: the overlap, readable before anything runs. */
export function formatSchedule(ops: readonly Op[]): string {
  return ops
    .map((op) => {
      const deps = op.deps.map((d) => opLabel(ops[d]!)).join(', ');
      return `${String(op.id).padStart(3)} ${op.stream.padEnd(7)} ${opLabel(op).padEnd(22)}${deps ? ` <- ${deps}` : ''}`;
    })
    .join('\n');
}
