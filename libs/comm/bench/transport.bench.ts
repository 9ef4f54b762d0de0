/**
 * Loopback throughput: raw TCP against the gRPC Peer transport, between two processes, for
 * several connection counts (and optionally part sizes). A benchmark, not a test:
 *
 *   npx tsx bench/transport.bench.ts [--seconds 2] [--mib 1] [--connections 1,2,4] [--frame-mib 16] [--repeats 3]
 *
 * Runs are interleaved (tcp, grpc c1, grpc c2, ..., then again) and each line reports the median
 * of its repeats, so a noisy shared host biases every configuration alike.
 */
import { measureGrpcLoopback, measureTcpLoopback, type LoopbackResult } from '../src/bench/loopback';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const seconds = Number(arg('seconds', '2'));
const messageBytes = Math.round(Number(arg('mib', '1')) * 1024 * 1024);
const connections = arg('connections', '1,2,4').split(',').map(Number);
const frameMib = arg('frame-mib', '16').split(',').map(Number);
const repeats = Number(arg('repeats', '3'));

interface Config {
  label: string;
  run: () => Promise<LoopbackResult>;
}
const configs: Config[] = [{ label: 'tcp', run: () => measureTcpLoopback(messageBytes, seconds) }];
for (const f of frameMib) {
  for (const c of connections) {
    configs.push({
      label: `grpc c=${c} part=${f}MiB`,
      run: () => measureGrpcLoopback(messageBytes, seconds, { connections: c, maxFrameBytes: Math.round(f * 1024 * 1024) }),
    });
  }
}

const samples = new Map<string, number[]>(configs.map((c) => [c.label, []]));
for (let r = 0; r < repeats; r++) {
  for (const c of configs) samples.get(c.label)!.push((await c.run()).mbPerSecond);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const tcp = median(samples.get('tcp')!);
console.log(`loopback between two processes: ${messageBytes / 2 ** 20} MiB messages, ${seconds} s a run, median of ${repeats}`);
console.log(`${'transport'.padEnd(22)} ${'MB/s'.padStart(8)} ${'vs tcp'.padStart(7)}   runs`);
for (const [label, xs] of samples) {
  const m = median(xs);
  console.log(`${label.padEnd(22)} ${m.toFixed(0).padStart(8)} ${(m / tcp).toFixed(2).padStart(7)}   ${xs.map((x) => x.toFixed(0)).join(' ')}`);
}
