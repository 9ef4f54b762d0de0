/**
 * `moe worker`: one worker process. Serves Worker and Peer over gRPC, registers with the
 * scheduler at --scheduler, heartbeats, and runs steps on its backend until told to stop.
 */
import { randomUUID } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DATA_PLANE_CHOICES, type DataPlaneChoice } from '@moe/comm';
import { configureLogging, lineLog, parseLogLevel, type LogLevel } from '@moe/log';
import type { Backend } from './backend';
import { loadBackend } from './backends/create-backend';
import { writeRegistrationStatus } from './registration-status';
import { WorkerNode } from './worker-node';
import { FAULT_ENV, faultFromEnv, type PlantedFault } from './schedule/faults';
import { CountingTransport } from './metrics/counting-transport';

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
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: $MOE_LOG_LEVEL, else info)', (v: string) => parseLogLevel(v, '--log-level'))
  .option(
    '--metrics-port <port>',
    'serve Prometheus metrics at http://<host>:<port>/metrics (0: any free port; default: $MOE_WORKER_METRICS_PORT, else none)',
    integer('--metrics-port'),
    process.env.MOE_WORKER_METRICS_PORT ? Number(process.env.MOE_WORKER_METRICS_PORT) : undefined,
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
  logLevel?: LogLevel;
  metricsPort?: number;
}>();

// Lines go to stderr (JSON unless it is a terminal); stdout carries the one line a parent reads,
// "worker <id> listening on <address>".
const logger = configureLogging({ name: 'worker', level: opts.logLevel });

/**
 * `--advertise auto` (compose replicas, which share one environment): the bound host when it is
 * a specific address, else this machine's first non-internal IPv4, else 127.0.0.1; and --port.
 */
function resolveAdvertise(advertise: string | undefined, host: string, port: number): string | undefined {
  if (advertise !== 'auto') return advertise || undefined;
  if (port === 0) {
    logger.fatal('moe worker: --advertise auto needs a fixed --port (MOE_WORKER_PORT), not 0');
    process.exit(2);
  }
  if (host !== '0.0.0.0' && host !== '::') return `${host}:${port}`;
  const ipv4 = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  return `${ipv4?.address ?? '127.0.0.1'}:${port}`;
}

if (!DATA_PLANE_CHOICES.includes(opts.transport)) {
  logger.fatal(`moe worker: --transport (or MOE_TRANSPORT) "${opts.transport}" is not one of ${DATA_PLANE_CHOICES.join(', ')}`);
  process.exit(2);
}

let backend: Backend;
let fault: PlantedFault | undefined;
try {
  fault = faultFromEnv();
  backend = await loadBackend(opts.backend);
} catch (error) {
  lineLog(logger)(`moe worker: ${(error as Error).name}: ${(error as Error).message}`, { level: 'error', err: error });
  process.exit(2);
}

// Named here, not in WorkerNode, so the metrics carry the same id from their first sample.
const workerId = opts.workerId ?? `worker-${randomUUID().slice(0, 8)}`;
// prom-client loads only for a worker that serves metrics.
const metricsModules = opts.metricsPort === undefined ? undefined : await Promise.all([import('./metrics/worker-metrics'), import('./metrics/metrics-server')]);
const metrics = metricsModules && new metricsModules[0].WorkerMetrics(workerId);
const node = new WorkerNode({
  scheduler: opts.scheduler,
  host: opts.host,
  port: opts.port,
  advertise: resolveAdvertise(opts.advertise, opts.host, opts.port),
  workerId,
  backend,
  peerTimeoutMs: opts.peerTimeout,
  registerTimeoutMs: opts.registerTimeout,
  token: opts.token ?? '',
  onRegistration: opts.statusFile
    ? (registered) => writeRegistrationStatus(opts.statusFile!, { workerId: node.id, scheduler: opts.scheduler, registered, at: Date.now() }, console.error)
    : undefined,
  fault,
  transport: opts.transport,
  onListening: (address) => process.stdout.write(`worker ${node.id} listening on ${address}\n`),
  onStep: metrics?.observeStep,
  wrapTransport: metrics && ((transport, nodeSize) => new CountingTransport(transport, nodeSize, metrics.countBytes)),
});
if (fault) logger.warn({ workerId: node.id, fault: fault.name }, `worker ${node.id}: PLANTED FAULT ${fault.name} (${FAULT_ENV}); this run is wrong on purpose`);
const metricsServer = metrics && metricsModules && (await metricsModules[1].serveMetrics(metrics.registry, opts.host, opts.metricsPort!));
if (metricsServer) logger.info({ workerId: node.id }, `worker ${node.id}: metrics at http://${metricsServer.address}/metrics`);

const stop = (signal: string) => {
  logger.info({ workerId: node.id }, `worker ${node.id}: ${signal}, stopping`);
  Promise.all([node.close(signal), metricsServer?.close()]).finally(() => process.exit(0));
  setTimeout(() => process.exit(1), 5_000).unref();
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

node.start().catch((error: Error) => {
  lineLog(logger)(error.message, { level: 'fatal', workerId: node.id, err: error });
  process.exit(1);
});
