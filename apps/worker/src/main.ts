/**
 * `moe worker`: one worker process. Serves Worker and Peer over gRPC, registers with the
 * scheduler at --scheduler, heartbeats, and runs steps on its backend until told to stop.
 */
import { networkInterfaces } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DATA_PLANE_CHOICES, type DataPlaneChoice } from '@moe/comm';
import type { Backend } from './backend';
import { loadBackend } from './backends/create-backend';
import { writeRegistrationStatus } from './registration-status';
import { WorkerNode } from './worker-node';
import { FAULT_ENV, faultFromEnv, type PlantedFault } from './schedule/faults';

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
  .option(
    '--advertise <host:port|auto>',
    'address peers use to reach this worker (default: host:port bound); "auto": this machine\'s first non-loopback IPv4 (a container\'s address) and --port, when --host is 0.0.0.0',
    process.env.MOE_WORKER_ADVERTISE,
  )
  .option('--backend <name|module>', 'compute backend: cpu, sim, or a backend module (./path.js or a package name)', process.env.MOE_BACKEND ?? 'cpu')
  .option('--worker-id <id>', 'unique name of this worker', process.env.MOE_WORKER_ID)
  .option('--peer-timeout <ms>', 'timeout of every wait for a peer during a step', integer('--peer-timeout'), 30_000)
  .option('--token <token>', 'cluster token, required from every caller and sent on every call (prefer the MOE_CLUSTER_TOKEN environment variable: flags show in ps)', process.env.MOE_CLUSTER_TOKEN)
  .option('--status-file <path>', 'keep this worker\'s registration (registered, when the scheduler last acknowledged it) in this JSON file, for `moe health worker`', process.env.MOE_WORKER_STATUS_FILE)
  .option('--register-timeout <ms>', 'how long to keep trying to register', integer('--register-timeout'), 30_000)
  .addOption(
    new Option('--transport <plane>', 'data plane to peers: auto (socket to peers that speak it, gRPC Exchange to the others), socket, or grpc')
      .choices(DATA_PLANE_CHOICES)
      .default(process.env.MOE_TRANSPORT || 'auto'),
  )
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
  token?: string;
  statusFile?: string;
  transport: DataPlaneChoice;
}>();

/**
 * `--advertise auto` (compose replicas, which share one environment): the bound host when it is
 * a specific address, else this machine's first non-internal IPv4, else 127.0.0.1; and --port.
 */
function resolveAdvertise(advertise: string | undefined, host: string, port: number): string | undefined {
  if (advertise !== 'auto') return advertise || undefined;
  if (port === 0) {
    console.error('moe worker: --advertise auto needs a fixed --port (MOE_WORKER_PORT), not 0');
    process.exit(2);
  }
  if (host !== '0.0.0.0' && host !== '::') return `${host}:${port}`;
  const ipv4 = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  return `${ipv4?.address ?? '127.0.0.1'}:${port}`;
}

if (!DATA_PLANE_CHOICES.includes(opts.transport)) {
  console.error(`moe worker: --transport (or MOE_TRANSPORT) "${opts.transport}" is not one of ${DATA_PLANE_CHOICES.join(', ')}`);
  process.exit(2);
}

let backend: Backend;
let fault: PlantedFault | undefined;
try {
  fault = faultFromEnv();
  backend = await loadBackend(opts.backend);
} catch (error) {
  console.error(`moe worker: ${(error as Error).name}: ${(error as Error).message}`);
  process.exit(2);
}

const node = new WorkerNode({
  scheduler: opts.scheduler,
  host: opts.host,
  port: opts.port,
  advertise: resolveAdvertise(opts.advertise, opts.host, opts.port),
  workerId: opts.workerId,
  backend,
  peerTimeoutMs: opts.peerTimeout,
  registerTimeoutMs: opts.registerTimeout,
  token: opts.token ?? '',
  onRegistration: opts.statusFile
    ? (registered) => writeRegistrationStatus(opts.statusFile!, { workerId: node.id, scheduler: opts.scheduler, registered, at: Date.now() }, console.error)
    : undefined,
  fault,
  transport: opts.transport,
});
if (fault) console.error(`worker ${node.id}: PLANTED FAULT ${fault.name} (${FAULT_ENV}); this run is wrong on purpose`);

const stop = (signal: string) => {
  console.log(`worker ${node.id}: ${signal}, stopping`);
  node.close(signal).finally(() => process.exit(0));
  setTimeout(() => process.exit(1), 5_000).unref();
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

node.start().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
