/**
 * A 4-rank all-to-all between 4 processes: raw TCP against each data plane (gRPC Exchange, the
 * socket data plane over Unix sockets and over TCP), in one run. A benchmark, not a test:
 *
 *   npx tsx libs/comm/bench/alltoall.bench.ts [--kib 128,1024] [--mb 64] [--repeats 3] [--warmup 1] [--depth 2] [--world 4] [--planes tcp,grpc,socket,socket-tcp]
 *
 * --kib: frame sizes (KiB, one rank to one peer per round; a default `moe bench` step sends
 * about 64-128 KiB frames). --mb: payload MB each rank sends per measured run.
 */
import { measureAllToAll, type AllToAllPlane } from '../src/bench/alltoall';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const sizes = arg('kib', '128,1024').split(',').map((k) => Math.round(Number(k) * 1024));
const planes = arg('planes', 'tcp,grpc,socket,socket-tcp').split(',') as AllToAllPlane[];
const world = Number(arg('world', '4'));
console.log(
  `all-to-all, ${world} processes, ${arg('mb', '64')} MB sent per rank a run, depth ${arg('depth', '2')}, median of ${arg('repeats', '3')} after ${arg('warmup', '1')} warm-up run(s) a plane`,
);
console.log(`${'frame'.padEnd(10)} ${'plane'.padEnd(11)} ${'MB/s'.padStart(8)} ${'vs tcp'.padStart(7)} ${'cpu ms/MB'.padStart(10)} ${'of it sys'.padStart(9)}   runs`);
for (const frameBytes of sizes) {
  const results = await measureAllToAll({
    world,
    frameBytes,
    planes,
    bytesPerRank: Number(arg('mb', '64')) * 1e6,
    repeats: Number(arg('repeats', '3')),
    warmup: Number(arg('warmup', '1')),
    depth: Number(arg('depth', '2')) as 1 | 2,
  });
  for (const r of results) {
    console.log(
      `${`${(r.frameBytes / 1024).toFixed(0)} KiB`.padEnd(10)} ${r.plane.padEnd(11)} ${r.mbPerSecond.toFixed(0).padStart(8)} ${r.vsTcp.toFixed(2).padStart(7)} ${r.cpuMsPerMb.toFixed(2).padStart(10)} ${r.sysMsPerMb.toFixed(2).padStart(9)}   ${r.runs.map((x) => x.toFixed(0)).join(' ')}`,
    );
  }
}
