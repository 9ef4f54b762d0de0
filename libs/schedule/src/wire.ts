import { CODEC_WIRE, type CombineCodecName, type DispatchCodecName } from './codecs';
import { scheduleBuilder, scheduleForWireEnum, UnknownScheduleError } from './registry';
import { StepSettingsError, resolveStepSettings, type StepSettings } from './settings';

/**
 * The fields of the proto's `StepOptions` that carry step settings, as `@moe/comm`'s generated
 * types spell them (structurally the same type, so this lib needs no generated code).
 */
export interface StepOptionsWire {
  schedule?: string | number;
  scheduleName?: string;
  chunks?: number;
  dispatchCodec?: string | number;
  combineCodec?: string | number;
  recordTimeline?: boolean;
  allToAll?: string;
  nodeSize?: number;
}

const CODEC_FROM_WIRE: Readonly<Record<string, string>> = {
  DTYPE_UNSPECIFIED: 'f32',
  ...Object.fromEntries(Object.entries(CODEC_WIRE).map(([name, wire]) => [wire, name])),
};

/** The settings as `StepOptions`: `schedule_name` always, the enum too for the schedules that have one. */
export function stepOptionsToWire(s: StepSettings) {
  const builder = scheduleBuilder(s.schedule);
  return {
    schedule: builder.wireEnum ?? 'SCHEDULE_UNSPECIFIED',
    scheduleName: builder.name,
    chunks: builder.chunked ? s.chunks : 1,
    dispatchCodec: CODEC_WIRE[s.dispatchCodec],
    combineCodec: CODEC_WIRE[s.combineCodec],
    recordTimeline: s.recordTimeline,
    allToAll: s.allToAll,
    nodeSize: s.nodeSize,
  } as const;
}

/**
 * `StepOptions` as checked settings: `schedule_name` when set, else the enum (UNSPECIFIED means
 * naive); chunks 0 means the schedule's default. An unknown schedule or codec is refused, named.
 * @throws UnknownScheduleError, StepSettingsError
 */
export function stepSettingsFromWire(msg: StepOptionsWire | null | undefined, where = 'StepOptions'): StepSettings {
  const options = msg ?? {};
  let schedule: string;
  if (options.scheduleName) {
    schedule = options.scheduleName;
  } else {
    const wire = String(options.schedule ?? 'SCHEDULE_UNSPECIFIED');
    const builder = scheduleForWireEnum(wire);
    if (!builder) throw new UnknownScheduleError(wire, `${where}.schedule`);
    schedule = builder.name;
  }
  scheduleBuilder(schedule, `${where}.schedule_name`);
  const codec = (value: string | number | undefined, field: 'dispatchCodec' | 'combineCodec') => {
    const name = CODEC_FROM_WIRE[String(value ?? 'DTYPE_UNSPECIFIED')];
    if (!name) throw new StepSettingsError(`${where}.${field === 'dispatchCodec' ? 'dispatch_codec' : 'combine_codec'}: ${value} is not a codec`, field);
    return name;
  };
  try {
    return resolveStepSettings({
      schedule,
      chunks: options.chunks ? options.chunks : undefined,
      dispatchCodec: codec(options.dispatchCodec, 'dispatchCodec') as DispatchCodecName,
      combineCodec: codec(options.combineCodec, 'combineCodec') as CombineCodecName,
      recordTimeline: options.recordTimeline ?? false,
      // Empty is proto3's "unset": a sender from before the hierarchical all-to-all.
      allToAll: (options.allToAll || 'flat') as StepSettings['allToAll'],
      nodeSize: options.nodeSize ?? 0,
    });
  } catch (error) {
    if (error instanceof StepSettingsError) throw new StepSettingsError(`${where}: ${error.message}`, error.field);
    throw error;
  }
}
