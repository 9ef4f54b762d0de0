/**
 * How long processes' main threads ran and how long they waited for a CPU, from the kernel's
 * scheduler statistics (Linux: `/proc/<pid>/schedstat` is the thread-group leader, node's main
 * thread: ns on a CPU, ns runnable but queued, timeslices).
 *
 * Why the bench records it: a local cluster of sim workers shares the machine's cores, and when
 * its workers' all-to-alls run at the same moments they queue for them (measured on a 2-core host:
 * each main thread runnable-but-waiting 34-42% of a run). That wait is host time no model of the
 * devices holds, and it moves from run to run; a row's figure beside its probes' says whether a
 * miss of the prediction came from it.
 */
import { readFileSync } from 'node:fs';

/** ms: run and wait are means over the processes. */
export interface CpuTimes {
  /** on a CPU */
  runMs: number;
  /** runnable, waiting in the run queue */
  waitMs: number;
  /** wall time watched, ms */
  wallMs: number;
}

interface Sample {
  runNs: bigint;
  waitNs: bigint;
}

function sample(pid: number): Sample | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    if (run === undefined || wait === undefined || !/^\d+$/.test(run) || !/^\d+$/.test(wait)) return null;
    return { runNs: BigInt(run), waitNs: BigInt(wait) };
  } catch {
    return null; // not Linux, no schedstat in this kernel, or the process is gone
  }
}

const ms = (ns: bigint) => Number(ns) / 1e6;

/**
 * Starts watching `pids`; the returned function gives their times since then, or null when any
 * process could not be read (another OS, a kernel without schedstat, a process that exited).
 */
export function watchCpu(pids: readonly number[]): () => CpuTimes | null {
  const startedNs = process.hrtime.bigint();
  const start = pids.map(sample);
  return () => {
    if (pids.length === 0 || start.some((s) => s === null)) return null;
    let runMs = 0;
    let waitMs = 0;
    for (const [i, pid] of pids.entries()) {
      const now = sample(pid);
      if (!now) return null;
      runMs += ms(now.runNs - start[i]!.runNs);
      waitMs += ms(now.waitNs - start[i]!.waitNs);
    }
    return { runMs: runMs / pids.length, waitMs: waitMs / pids.length, wallMs: ms(process.hrtime.bigint() - startedNs) };
  };
}
