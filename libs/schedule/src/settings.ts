import { COMBINE_CODECS, DISPATCH_CODECS, type CombineCodecName, type DispatchCodecName } from './codecs';
import { ScheduleError } from './ops';
import { BASELINE_SCHEDULE, scheduleBuilder } from './registry';

/** How every step of a run is executed: the same object on the command line, in a queued job and on the wire. */
export interface StepSettings {
  /** A registered schedule (`SCHEDULE_NAMES`). */
  schedule: string;
  /** Token chunks per layer: the schedule's default when not asked for; 1 for a schedule that does not chunk. */
  chunks: number;
  dispatchCodec: DispatchCodecName;
  combineCodec: CombineCodecName;
  /** Ask workers for their op timeline (OpRecord list) every step. */
  recordTimeline: boolean;
  /** How tokens reach their experts: `flat` (straight to the rank) or `hierarchical` (across nodes once, then within the node). */
  allToAll: AllToAllModeName;
  /** Ranks per modeled node (consecutive ranks); 0: every rank in one node. Bytes are reported by link class from it. */
  nodeSize: number;
}

export const ALL_TO_ALL_MODE_NAMES = ['flat', 'hierarchical'] as const;
export type AllToAllModeName = (typeof ALL_TO_ALL_MODE_NAMES)[number];

export const DEFAULT_STEP_SETTINGS: Readonly<StepSettings> = Object.freeze({
  schedule: BASELINE_SCHEDULE,
  chunks: 1,
  dispatchCodec: 'f32',
  combineCodec: 'f32',
  recordTimeline: false,
  allToAll: 'flat',
  nodeSize: 0,
});

/** Step settings that cannot work; `field` names the setting (`chunks`, `dispatchCodec`, ...). */
export class StepSettingsError extends ScheduleError {
  constructor(
    message: string,
    readonly field: keyof StepSettings,
  ) {
    super(message);
  }
}

/** What a caller may leave out: every field but none required. */
export type StepSettingsInput = { [K in keyof StepSettings]?: StepSettings[K] | undefined };

/**
 * Complete, checked step settings. The rules, stated once:
 * - the schedule is registered (UnknownScheduleError otherwise);
 * - chunks is a positive integer, the schedule's default when absent; a schedule that does not
 *   chunk refuses any count but 1;
 * - the dispatch codec is one of DISPATCH_CODECS, the combine codec one of COMBINE_CODECS;
 * - allToAll is one of ALL_TO_ALL_MODE_NAMES; nodeSize a non-negative integer, and at least 1
 *   for the hierarchical all-to-all (the world is checked against it where it is known).
 * @throws StepSettingsError naming the field and the value
 */
export function resolveStepSettings(input: StepSettingsInput = {}): StepSettings {
  const schedule = input.schedule ?? DEFAULT_STEP_SETTINGS.schedule;
  const builder = scheduleBuilder(schedule);
  const chunks = input.chunks ?? builder.defaultChunks;
  if (!Number.isInteger(chunks) || chunks < 1) {
    throw new StepSettingsError(`chunks=${chunks} must be a positive integer`, 'chunks');
  }
  if (!builder.chunked && chunks !== 1) {
    throw new StepSettingsError(`chunks=${chunks}: schedule ${schedule} does not chunk (it runs 1); chunks need a chunked schedule`, 'chunks');
  }
  const dispatchCodec = input.dispatchCodec ?? DEFAULT_STEP_SETTINGS.dispatchCodec;
  if (!(DISPATCH_CODECS as readonly string[]).includes(dispatchCodec)) {
    throw new StepSettingsError(`dispatch codec ${JSON.stringify(dispatchCodec)} is not one of ${DISPATCH_CODECS.join(', ')}`, 'dispatchCodec');
  }
  const combineCodec = input.combineCodec ?? DEFAULT_STEP_SETTINGS.combineCodec;
  if (!(COMBINE_CODECS as readonly string[]).includes(combineCodec)) {
    throw new StepSettingsError(`combine codec ${JSON.stringify(combineCodec)} is not one of ${COMBINE_CODECS.join(', ')}`, 'combineCodec');
  }
  const allToAll = input.allToAll ?? DEFAULT_STEP_SETTINGS.allToAll;
  if (!(ALL_TO_ALL_MODE_NAMES as readonly string[]).includes(allToAll)) {
    throw new StepSettingsError(`all-to-all ${JSON.stringify(allToAll)} is not one of ${ALL_TO_ALL_MODE_NAMES.join(', ')}`, 'allToAll');
  }
  const nodeSize = input.nodeSize ?? DEFAULT_STEP_SETTINGS.nodeSize;
  if (!Number.isInteger(nodeSize) || nodeSize < 0) throw new StepSettingsError(`nodeSize=${nodeSize} must be a non-negative integer (0: one node)`, 'nodeSize');
  if (allToAll === 'hierarchical' && nodeSize < 1) {
    throw new StepSettingsError('the hierarchical all-to-all needs nodeSize >= 1 (ranks per node); with one node it is the flat one', 'nodeSize');
  }
  return { schedule, chunks, dispatchCodec, combineCodec, recordTimeline: input.recordTimeline ?? DEFAULT_STEP_SETTINGS.recordTimeline, allToAll, nodeSize };
}

/** `overlapped (2 chunks), dispatch fp8, combine bf16`: the settings as a person reads them. */
export function describeStepSettings(s: StepSettings): string {
  const chunks = scheduleBuilder(s.schedule).chunked ? ` (${s.chunks} chunks)` : '';
  const a2a = s.allToAll === 'hierarchical' ? `, hierarchical all-to-all (nodes of ${s.nodeSize})` : '';
  return `${s.schedule}${chunks} schedule, dispatch ${s.dispatchCodec}, combine ${s.combineCodec}${a2a}`;
}

/** `overlapped C2` / `naive`: a short run label for progress lines and reports. */
export function stepSettingsLabel(s: Pick<StepSettings, 'schedule' | 'chunks'>): string {
  return scheduleBuilder(s.schedule).chunked ? `${s.schedule} C${s.chunks}` : s.schedule;
}
