import type { OpRecordOut } from '@moe/comm';
import { ReportError, type Direction, type OpRecordData, type StepSample, type Stream } from './types';

/**
 * The all-to-all ops: the ones `comm_ms`, `exposed_comm_ms` and `algbw_gbps` count. Forward
 * (dispatch, combine) and backward (combine_bwd, dispatch_bwd) alike. The `allreduce` of the
 * dense gradients also runs on the comm stream but is not an all-to-all, and is not counted.
 */
export const ALL_TO_ALL_OPS: ReadonlySet<string> = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd']);

/** `dispatch L1 C2` (` M1` for micro-batch 1); the layer and chunk are left out when -1, micro-batch 0 too (as the worker's formatSchedule). */
export function opLabel(op: Pick<OpRecordData, 'name' | 'layer' | 'chunk' | 'microBatch'>): string {
  const mb = op.microBatch ?? 0;
  return `${op.name}${op.layer >= 0 ? ` L${op.layer}` : ''}${op.chunk >= 0 ? ` C${op.chunk}` : ''}${mb > 0 ? ` M${mb}` : ''}`;
}

/** What an op is drawn as: its family (one colour), and a short tag for labels. */
export interface OpStyle {
  family: OpFamily;
  tag: string;
}

export type OpFamily = 'dispatch' | 'combine' | 'experts' | 'shared' | 'dense' | 'other' | 'allreduce';

/** Colours by family (Okabe-Ito, readable by the colour-blind); backward ops are hatched. */
export const FAMILY_COLOURS: Readonly<Record<OpFamily, string>> = {
  dispatch: '#0072B2',
  combine: '#E69F00',
  experts: '#009E73',
  shared: '#56B4E9',
  dense: '#CC79A7',
  other: '#8C8C8C',
  allreduce: '#D55E00',
};

export const FAMILY_NAMES: Readonly<Record<OpFamily, string>> = {
  dispatch: 'dispatch (D)',
  combine: 'combine (C)',
  experts: 'experts (E)',
  shared: 'shared expert (S)',
  dense: 'route (R) / post (P)',
  other: 'embed, loss, grads, update',
  allreduce: 'allreduce (AR)',
};

const STYLES: Readonly<Record<string, OpStyle>> = {
  begin: { family: 'other', tag: 'embed' },
  route: { family: 'dense', tag: 'R' },
  shared: { family: 'shared', tag: 'S' },
  dispatch: { family: 'dispatch', tag: 'D' },
  experts: { family: 'experts', tag: 'E' },
  combine: { family: 'combine', tag: 'C' },
  post: { family: 'dense', tag: 'P' },
  loss: { family: 'other', tag: 'loss' },
  post_bwd: { family: 'dense', tag: 'P' },
  combine_bwd: { family: 'combine', tag: 'C' },
  experts_bwd: { family: 'experts', tag: 'E' },
  experts_dgrad: { family: 'experts', tag: 'E' },
  experts_wgrad: { family: 'experts', tag: 'W' },
  dispatch_bwd: { family: 'dispatch', tag: 'D' },
  shared_bwd: { family: 'shared', tag: 'S' },
  route_bwd: { family: 'dense', tag: 'R' },
  grads: { family: 'other', tag: 'grads' },
  allreduce: { family: 'allreduce', tag: 'AR' },
  update: { family: 'other', tag: 'upd' },
};

/** Style of an op kind; an unknown kind is drawn as `other` with its own name. */
export function opStyle(name: string): OpStyle {
  return STYLES[name] ?? { family: 'other', tag: name };
}

/** A short label that fits in a bar: `E1.0` is experts of layer 1, chunk 0. */
export function opTag(op: Pick<OpRecordData, 'name' | 'layer' | 'chunk'>): string {
  const { tag } = opStyle(op.name);
  return `${tag}${op.layer >= 0 ? op.layer : ''}${op.chunk >= 0 ? `.${op.chunk}` : ''}`;
}

/** An `OpRecord` as received; `modeled_ms` and `micro_batch` are optional, as senders built before them leave them out. */
export type WireOpRecord = Omit<OpRecordOut, 'modeledMs' | 'microBatch'> & { modeledMs?: number; microBatch?: number };

const STREAMS: ReadonlySet<string> = new Set(['compute', 'comm']);
const DIRECTIONS: ReadonlySet<string> = new Set(['forward', 'backward', 'update']);

/**
 * Converts one `OpRecord` of a `RunStepResponse` into `OpRecordData`.
 * Throws `ReportError` naming the field when the stream, direction or times are not valid.
 */
export function fromOpRecord(record: WireOpRecord): OpRecordData {
  if (!STREAMS.has(record.stream)) {
    throw new ReportError(`op ${opLabel(record)}: stream="${record.stream}" is neither "compute" nor "comm" (OpRecord.stream)`);
  }
  if (!DIRECTIONS.has(record.direction)) {
    throw new ReportError(
      `op ${opLabel(record)}: direction="${record.direction}" is not forward, backward or update (OpRecord.direction)`,
    );
  }
  const startMs = Number(record.startMs);
  const endMs = Number(record.endMs);
  if (!Number.isFinite(startMs) || !Number.isFinite(endMs) || endMs < startMs) {
    throw new ReportError(`op ${opLabel(record)}: start_ms=${record.startMs}, end_ms=${record.endMs} is not an interval (OpRecord)`);
  }
  return {
    name: record.name,
    stream: record.stream as Stream,
    layer: record.layer,
    chunk: record.chunk,
    microBatch: record.microBatch ?? 0,
    startMs,
    endMs,
    bytesSent: Number(record.bytesSent),
    direction: record.direction as Direction,
    // a modeled device's compute op (sim): the cost model's duration; 0 on the wire means none
    ...(Number(record.modeledMs ?? 0) > 0 ? { modeledMs: Number(record.modeledMs) } : {}),
  };
}

/**
 * One step as the driver gathered it (the scheduler's step time, and each rank's
 * `RunStepResponse.timeline`) as a `StepSample`.
 * @param step.timelines [world_size][ops], indexed by rank; every rank must have recorded one.
 * @throws ReportError naming the step and the ranks without a timeline (ask for `record_timeline`).
 */
export function toStepSample(step: { step: number; stepMs: number; timelines: readonly (readonly WireOpRecord[])[] }): StepSample {
  const empty = step.timelines.flatMap((ops, rank) => (ops.length === 0 ? [rank] : []));
  if (step.timelines.length === 0 || empty.length > 0) {
    throw new ReportError(
      `step ${step.step}: ${step.timelines.length === 0 ? 'no ranks' : `rank${empty.length > 1 ? 's' : ''} ${empty.join(', ')}`} sent no timeline; ` +
        'a report needs every worker to record one (StepOptions.record_timeline)',
    );
  }
  return { step: step.step, stepMs: step.stepMs, timelines: step.timelines.map((ops) => ops.map(fromOpRecord)) };
}
