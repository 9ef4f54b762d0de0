/**
 * Each run's progress over time, for the dashboard's live charts (step time, loss). A job keeps
 * only its latest progress in Redis; this listens to the queue's progress events and keeps the
 * points of the most recent runs in memory (bounded: a restart of serve starts them afresh).
 */
import type { QueueEvents } from 'bullmq';
import type { RunProgress } from '../queue/run-job';

export interface ProgressPoint {
  /** When it arrived, `Date.now()` ms. */
  at: number;
  attempt: number;
  phase: RunProgress['phase'];
  done: number;
  total: number;
  stepMs?: number;
  loss?: number;
  label?: string;
}

export interface ProgressHistoryOptions {
  /** Runs remembered; the oldest is forgotten first. Default 50. */
  maxRuns?: number;
  /** Points kept per run; the oldest are dropped first. Default 2000. */
  maxPoints?: number;
}

const isProgress = (data: unknown): data is RunProgress =>
  typeof data === 'object' && data !== null && 'phase' in data && 'done' in data && 'total' in data;

export class ProgressHistory {
  private readonly runs = new Map<string, ProgressPoint[]>();
  private readonly maxRuns: number;
  private readonly maxPoints: number;
  private detach?: () => void;

  constructor(options: ProgressHistoryOptions = {}) {
    this.maxRuns = options.maxRuns ?? 50;
    this.maxPoints = options.maxPoints ?? 2_000;
  }

  /** Records every progress event of `events` until `stop`. */
  listen(events: QueueEvents): this {
    const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
      if (isProgress(data)) this.record(jobId, data);
    };
    events.on('progress', onProgress);
    this.detach = () => events.off('progress', onProgress);
    return this;
  }

  record(jobId: string, progress: RunProgress, at = Date.now()): void {
    let points = this.runs.get(jobId);
    if (!points) {
      points = [];
      this.runs.set(jobId, points);
      if (this.runs.size > this.maxRuns) this.runs.delete(this.runs.keys().next().value!);
    }
    const { attempt, phase, done, total, stepMs, loss, label } = progress;
    points.push({ at, attempt, phase, done, total, stepMs, loss, label });
    if (points.length > this.maxPoints) points.splice(0, points.length - this.maxPoints);
  }

  /** The points of `jobId` in arrival order (empty when none were seen by this process). */
  of(jobId: string): readonly ProgressPoint[] {
    return this.runs.get(jobId) ?? [];
  }

  stop(): void {
    this.detach?.();
    this.detach = undefined;
  }
}
