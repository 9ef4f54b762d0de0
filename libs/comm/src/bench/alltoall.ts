/**
 * The all-to-all benchmark: `world` processes (src/bench/alltoall-rank.ts), each serving a raw
 * TCP sink, the gRPC Peer service and the socket data plane, move the same all-to-all over raw
 * TCP and over each data plane, in one run and between the same processes. Runs are interleaved
 * (tcp, grpc, socket, ..., then again) so a noisy host biases every plane alike, after a round
 * of warm-up runs of every plane that is not measured.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { AllToAllPlane, RankAddresses, RankReport, RankRun } from './alltoall-rank';
import { dataPlaneChildExecArgv } from '../transport/node-flags';

export type { AllToAllPlane } from './alltoall-rank';

export interface AllToAllOptions {
  /** Ranks (processes); 4 unless told. */
  world?: number;
  /** Payload bytes of one frame (one rank to one peer, one round): what a bench step sends. */
  frameBytes: number;
  /** Row width of a frame (BF16 values a row). */
  cols?: number;
  /** Payload bytes each rank sends in one measured run (sets the rounds). */
  bytesPerRank?: number;
  /** Rounds in flight at once: 1 or 2 (a rank's mailbox refuses frames two steps behind its newest). */
  depth?: 1 | 2;
  planes?: AllToAllPlane[];
  /** Measured runs of every plane; each result is their median. */
  repeats?: number;
  /**
   * Runs of every plane before the measured ones, not measured (default 1): V8 compiles a
   * plane's code while it first runs, and a plane with more JS to compile (every data plane,
   * against raw TCP) would otherwise pay for that in its first measured run.
   */
  warmup?: number;
  /** How long a rank waits for a peer's frame before its run fails and says so (default 60 s). */
  receiveTimeoutMs?: number;
}

export interface AllToAllResult {
  plane: AllToAllPlane;
  frameBytes: number;
  world: number;
  rounds: number;
  /** 10^6 payload bytes per second, all ranks together (bytes sent by all / slowest rank's time). */
  mbPerSecond: number;
  /** Every repeat's figure, in run order. */
  runs: number[];
  /** CPU ms all ranks spent per MB moved (median of repeats): what a plane costs, whatever the host's load. */
  cpuMsPerMb: number;
  /** The kernel's share of cpuMsPerMb (system time), median of repeats. */
  sysMsPerMb: number;
  /** mbPerSecond / raw TCP's (1 for tcp itself; NaN without a tcp run). */
  vsTcp: number;
}

interface Rank {
  child: ChildProcess;
  /** The rank's next message; `waitingFor` names it in the error when none comes in time. */
  next: (waitingFor: string) => Promise<Record<string, unknown>>;
}

function startRank(rank: number, world: number): Rank {
  const script = new URL('./alltoall-rank.ts', import.meta.url);
  // the child runs TypeScript and moves frames: the parent's loader (tsx), and the flags a worker runs with
  const execArgv = dataPlaneChildExecArgv();
  const child = fork(script, [String(rank), String(world)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Record<string, unknown>[] = [];
  const waiters: { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  child.on('message', (m: Record<string, unknown>) => (waiters.length ? waiters.shift()!.resolve(m) : queue.push(m)));
  child.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`all-to-all rank ${rank} exited with code ${code}`));
  });
  const next = (waitingFor: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (queue.length) return resolve(queue.shift()!);
      const timer = setTimeout(() => reject(new Error(`all-to-all rank ${rank} said nothing for 120 s, waiting for ${waitingFor}`)), 120_000);
      waiters.push({ resolve: (m) => (clearTimeout(timer), resolve(m)), reject: (e) => (clearTimeout(timer), reject(e)) });
    }).then((m) => {
      if (typeof m.error === 'string') throw new Error(m.error);
      return m;
    });
  return { child, next };
}

const all = <T>(ranks: Rank[], f: (r: Rank) => Promise<T>) => Promise.all(ranks.map(f));

async function runOnce(ranks: Rank[], run: RankRun): Promise<{ mbPerSecond: number; cpuMsPerMb: number; sysMsPerMb: number }> {
  const what = `${run.plane} run ${run.runId}`;
  ranks.forEach((r) => r.child.send({ run }));
  await all(ranks, (r) => r.next(`${what} to be taken`)); // every rank offers the run's data plane before any dials
  ranks.forEach((r) => r.child.send({ start: true }));
  await all(ranks, (r) => r.next(`${what} to connect`)); // warm: connected, negotiated
  ranks.forEach((r) => r.child.send({ go: true }));
  const reports = (await all(ranks, (r) => r.next(`${what} to report`))) as unknown as RankReport[];
  if (!run.plane.startsWith('tcp')) {
    ranks.forEach((r) => r.child.send({ finish: true }));
    await all(ranks, (r) => r.next(`${what} to close`)); // closed
  }
  const bytes = reports.reduce((s, r) => s + r.bytes, 0);
  const ms = Math.max(...reports.map((r) => r.ms));
  const perMb = (ms: number) => (bytes > 0 ? ms / (bytes / 1e6) : 0);
  return {
    mbPerSecond: ms > 0 ? bytes / 1e6 / (ms / 1e3) : 0,
    cpuMsPerMb: perMb(reports.reduce((s, r) => s + r.cpuMs, 0)),
    sysMsPerMb: perMb(reports.reduce((s, r) => s + r.sysMs, 0)),
  };
}

/** Measures the all-to-all on every plane of `options.planes` (default: tcp, grpc, socket, socket-tcp). */
export async function measureAllToAll(options: AllToAllOptions): Promise<AllToAllResult[]> {
  const world = options.world ?? 4;
  const planes = options.planes ?? ['tcp', 'grpc', 'socket', 'socket-tcp'];
  const cols = options.cols ?? 256;
  const frameBytes = Math.max(2 * cols, Math.round(options.frameBytes / (2 * cols)) * 2 * cols);
  const rounds = Math.max(4, Math.ceil((options.bytesPerRank ?? 64e6) / (frameBytes * (world - 1))));
  const depth = options.depth ?? 2;
  const repeats = options.repeats ?? 3;
  const warmup = options.warmup ?? 1;
  const receiveTimeoutMs = options.receiveTimeoutMs ?? 60_000;
  if (world < 2) throw new RangeError(`all-to-all benchmark: world ${world} needs at least 2 ranks`);
  const ranks = Array.from({ length: world }, (_, rank) => startRank(rank, world));
  try {
    const addresses = (await all(ranks, (r) => r.next('its addresses'))).map((m) => m.addresses as RankAddresses);
    ranks.forEach((r) => r.child.send({ peers: addresses }));
    await all(ranks, (r) => r.next("its peers' addresses to be taken"));
    const samples = new Map<AllToAllPlane, number[]>(planes.map((p) => [p, []]));
    const cpu = new Map<AllToAllPlane, number[]>(planes.map((p) => [p, []]));
    const sys = new Map<AllToAllPlane, number[]>(planes.map((p) => [p, []]));
    let runs = 0;
    for (let repeat = -warmup; repeat < repeats; repeat++) {
      for (const plane of planes) {
        const once = await runOnce(ranks, { plane, runId: `alltoall-${++runs}`, frameBytes, cols, rounds, depth, receiveTimeoutMs });
        if (repeat < 0) continue;
        samples.get(plane)!.push(once.mbPerSecond);
        cpu.get(plane)!.push(once.cpuMsPerMb);
        sys.get(plane)!.push(once.sysMsPerMb);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const tcp = samples.has('tcp') ? median(samples.get('tcp')!) : Number.NaN;
    return planes.map((plane) => {
      const m = median(samples.get(plane)!);
      return { plane, frameBytes, world, rounds, mbPerSecond: m, runs: samples.get(plane)!, vsTcp: m / tcp, cpuMsPerMb: median(cpu.get(plane)!), sysMsPerMb: median(sys.get(plane)!) };
    });
  } finally {
    await Promise.all(
      ranks.map(
        (r) =>
          new Promise<void>((resolve) => {
            if (r.child.exitCode !== null) return resolve();
            r.child.once('exit', () => resolve());
            if (r.child.connected) r.child.send({ exit: true });
            setTimeout(() => r.child.kill(), 2_000).unref();
          }),
      ),
    );
  }
}
