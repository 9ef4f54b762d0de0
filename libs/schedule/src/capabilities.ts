import { ScheduleError } from './ops';
import type { StepSettings } from './settings';

/** The schedules a worker that predates RegisterRequest.schedules runs. */
export const LEGACY_SCHEDULES: readonly string[] = ['naive', 'overlapped'];

/** What a worker said at Register it can run. */
export interface WorkerCapabilities {
  workerId: string;
  /** Registered schedule names it runs (RegisterRequest.schedules; empty: LEGACY_SCHEDULES). */
  schedules: readonly string[];
  /** The most micro-batches a step may hold on it (RegisterRequest.max_micro_batches; 0: 1). */
  maxMicroBatches: number;
}

/** A worker cannot run the step settings a run asks for; names the worker and what it lacks. */
export class UnsupportedByWorkerError extends ScheduleError {
  constructor(
    message: string,
    readonly workerId: string,
  ) {
    super(message);
  }
}

/** RegisterRequest's fields as capabilities, the defaults of a worker that predates them filled in. */
export function capabilitiesFromRegister(r: { workerId: string; schedules?: readonly string[]; maxMicroBatches?: number }): WorkerCapabilities {
  return {
    workerId: r.workerId,
    schedules: r.schedules && r.schedules.length > 0 ? [...r.schedules] : [...LEGACY_SCHEDULES],
    maxMicroBatches: Math.max(1, r.maxMicroBatches ?? 0),
  };
}

/**
 * Refuses settings that a worker of the run cannot run: a schedule it does not list, or more
 * micro-batches than it keeps apart.
 * @throws UnsupportedByWorkerError naming the first such worker, the schedule and what it runs
 */
export function checkWorkersRun(workers: readonly WorkerCapabilities[], settings: Pick<StepSettings, 'schedule' | 'microBatches'>): void {
  for (const w of workers) {
    if (!w.schedules.includes(settings.schedule)) {
      throw new UnsupportedByWorkerError(
        `worker ${w.workerId} does not run schedule ${settings.schedule} (it runs ${w.schedules.join(', ')}); pick one of those or other workers`,
        w.workerId,
      );
    }
    if (settings.microBatches > w.maxMicroBatches) {
      throw new UnsupportedByWorkerError(
        `worker ${w.workerId} keeps at most ${w.maxMicroBatches} micro-batch${w.maxMicroBatches === 1 ? '' : 'es'} apart; the run asks for ${settings.microBatches}`,
        w.workerId,
      );
    }
  }
}
