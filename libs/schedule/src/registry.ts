import { fbOverlap } from './builders/fb-overlap';
import { naive } from './builders/naive';
import { overlapped } from './builders/overlapped';
import { ScheduleError, type Op, type ScheduleSpec } from './ops';

/** A named way to run a step: the one place a schedule is defined. */
export interface ScheduleBuilder {
  /** The name on the command line, in job data, in reports and (as `schedule_name`) on the wire. */
  name: string;
  /** One line for `--help` and the README. */
  summary: string;
  /** Whether the schedule splits a layer's tokens into chunks; a schedule that does not runs 1. */
  chunked: boolean;
  /** Chunks when none are asked for. */
  defaultChunks: number;
  /** The proto `Schedule` enum value of the schedules that predate `schedule_name` (workers that only read the enum). */
  wireEnum?: 'NAIVE' | 'OVERLAPPED';
  /** The op list of one step; `spec` is already checked. */
  build(spec: ScheduleSpec): Op[];
}

/** A schedule name that no builder is registered under. */
export class UnknownScheduleError extends ScheduleError {
  constructor(
    readonly schedule: string,
    where = 'schedule',
  ) {
    super(`unknown schedule ${JSON.stringify(schedule)} (${where}); the registered schedules are ${SCHEDULE_NAMES.join(', ')}`);
  }
}

// A new schedule is one more builder in this list, and nothing else.
const BUILDERS: readonly ScheduleBuilder[] = [naive, overlapped, fbOverlap];

const BY_NAME = new Map(BUILDERS.map((b) => [b.name, b]));

/** Every registered schedule's name, in registration order. */
export const SCHEDULE_NAMES: readonly string[] = BUILDERS.map((b) => b.name);

/** The names of the built-in schedules, for code that picks one (a bench, the conformance kit). */
export const NAIVE = naive.name;
export const OVERLAPPED = overlapped.name;
export const FB_OVERLAP = fbOverlap.name;

/** The baseline every comparison is made against. */
export const BASELINE_SCHEDULE = NAIVE;

/** The schedule a proto `Schedule` enum value stands for (UNSPECIFIED: the baseline); undefined when none does. */
export function scheduleForWireEnum(wire: string): ScheduleBuilder | undefined {
  return wire === 'SCHEDULE_UNSPECIFIED' ? naive : BUILDERS.find((b) => b.wireEnum === wire);
}

export function isScheduleName(name: string): boolean {
  return BY_NAME.has(name);
}

/** The builder registered as `name`; throws UnknownScheduleError naming it and the known ones. */
export function scheduleBuilder(name: string, where?: string): ScheduleBuilder {
  const builder = BY_NAME.get(name);
  if (!builder) throw new UnknownScheduleError(name, where);
  return builder;
}

/** Builds the op list of one step of `spec.kind`, after checking the spec. */
export function buildSchedule(spec: ScheduleSpec): Op[] {
  const builder = scheduleBuilder(spec.kind, 'schedule.kind');
  if (!Number.isInteger(spec.layers) || spec.layers < 1) {
    throw new ScheduleError(`layers=${spec.layers} must be a positive integer (schedule.layers)`);
  }
  if (!Number.isInteger(spec.chunks) || spec.chunks < 1) {
    throw new ScheduleError(`chunks=${spec.chunks} must be a positive integer (schedule.chunks)`);
  }
  const microBatches = spec.microBatches ?? 1;
  if (!Number.isInteger(microBatches) || microBatches < 1) {
    throw new ScheduleError(`microBatches=${microBatches} must be a positive integer (schedule.microBatches)`);
  }
  // A schedule that does not chunk runs 1 whatever the spec says; the settings refuse such a count
  // where a person asked for it (resolveStepSettings).
  return builder.build(builder.chunked ? spec : { ...spec, chunks: 1 });
}
