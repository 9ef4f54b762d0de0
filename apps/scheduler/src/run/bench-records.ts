/**
 * The parts of a bench record the report's metrics cannot see: what bound each row's
 * all-to-alls (the workers' modeled links or the host transport under them), from the link
 * stats every sim worker reports with each step, and what the transport line measured.
 */
import type { LinkRecord } from '@moe/report';
import { median } from '@moe/report';
import type { StepMetrics } from './step-driver';

/** Exactly what the bench's transport probe (`measureBenchTransport`) measures, for the report's transport line. */
export function transportMeasured(c: { world: number; frame_bytes: number; bytes_per_rank: number; repeats: number; warmup?: number; planes: readonly string[] }): string {
  return (
    `an all-to-all among ${c.world} processes on loopback (every process sends ${c.bytes_per_rank} bytes to its peers in frames of ${c.frame_bytes} bytes), ` +
    `once on each of ${c.planes.join(', ')} in turn, median of ${c.repeats} runs of each after ${c.warmup ?? 0} unmeasured`
  );
}

/**
 * The link record of a row from its measured steps: per step, the rank whose host transport
 * added the most on top of its modeled links. Null when no worker reported link stats.
 */
export function linkRecord(measured: readonly StepMetrics[]): LinkRecord | null {
  const perStep = measured.flatMap((s) => {
    const ranks = s.link.filter((l) => l !== null);
    if (ranks.length === 0) return [];
    const worst = ranks.reduce((a, b) => (b.hostMs > a.hostMs ? b : a));
    return [{ bound: ranks.some((l) => l.hostBound), hostMs: worst.hostMs, modeledMs: worst.modeledMs }];
  });
  if (perStep.length === 0) return null;
  const boundSteps = perStep.filter((s) => s.bound).length;
  return {
    host_bound: boundSteps * 2 > perStep.length,
    host_bound_steps: boundSteps,
    host_transport_ms: median(perStep.map((s) => s.hostMs)),
    modeled_link_ms: median(perStep.map((s) => s.modeledMs)),
  };
}
