/**
 * `moe worker`: one worker process. Serves Worker and Peer over gRPC, registers with the
 * scheduler at --scheduler, heartbeats, and runs steps on its backend until told to stop.
 */
import { Command, InvalidArgumentError } from 'commander';
import { createBackend } from './backends/create-backend';
import { WorkerNode } from './worker-node';

const integer = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, got "${value}"`);
  return n;
};

const program = new Command('moe worker')
  .description('start one worker: serves Worker and Peer, registers with the scheduler')
  .requiredOption('--scheduler <host:port>', 'address of the scheduler', process.env.MOE_SCHEDULER)
  .option('--host <host>', 'interface to bind', process.env.MOE_WORKER_HOST ?? '127.0.0.1')
  .option('--port <port>', 'port to bind (0: any free port)', integer('--port'), Number(process.env.MOE_WORKER_PORT ?? 0))
  .option('--advertise <host:port>', 'address peers use to reach this worker (default: host:port bound)', process.env.MOE_WORKER_ADVERTISE)
  .option('--backend <name>', 'compute backend', process.env.MOE_BACKEND ?? 'cpu')
  .option('--worker-id <id>', 'unique name of this worker', process.env.MOE_WORKER_ID)
  .option('--peer-timeout <ms>', 'timeout of every wait for a peer during a step', integer('--peer-timeout'), 30_000)
  .option('--register-timeout <ms>', 'how long to keep trying to register', integer('--register-timeout'), 30_000)
  .parse(process.argv);

const opts = program.opts<{
  scheduler: string;
  host: string;
  port: number;
  advertise?: string;
  backend: string;
  workerId?: string;
  peerTimeout: number;
  registerTimeout: number;
}>();

const node = new WorkerNode({
  scheduler: opts.scheduler,
  host: opts.host,
  port: opts.port,
  advertise: opts.advertise,
  workerId: opts.workerId,
  backend: createBackend(opts.backend),
  peerTimeoutMs: opts.peerTimeout,
  registerTimeoutMs: opts.registerTimeout,
});

const stop = (signal: string) => {
  console.log(`worker ${node.id}: ${signal}, stopping`);
  node.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(1), 5_000).unref();
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

node.start().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
