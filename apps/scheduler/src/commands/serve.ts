/**
 * `moe serve`: the scheduler as a service. Workers register on their own; runs come from the
 * queue one at a time. Reads REDIS_URL, MOE_QUEUE_PREFIX and the MOE_* variables its flags name.
 * The first SIGTERM/SIGINT aborts the current run (it goes back to the queue) and closes; a
 * second exits at once.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { integer } from './flags';
import { EXIT, stopOnSignals, type OnError } from './exit';
import { envInt, locationOf, locationOptions, withRedisHint, type LocationFlags } from './queue-options';
import { DEFAULT_RENDEZVOUS_TIMEOUT_MS } from '../control/rendezvous';
import { RunService } from '../queue/run-service';
import { RunQueue } from '../queue/run-queue';
import type { HttpServer } from '../http/index';
import type { Dashboard } from '../dashboard/index';
import { lineLog, log as processLog } from '@moe/log';

interface ServeFlags extends LocationFlags {
  host?: string;
  port?: number;
  reports?: string;
  rendezvousTimeout?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
  httpHost?: string;
  httpPort?: number;
}

/** Serves runs until a signal; resolves with the exit code. */
export async function serveCommand(flags: ServeFlags, onError: OnError): Promise<number> {
  const log = lineLog(processLog());
  let service: RunService | undefined;
  let counts: RunQueue | undefined;
  let http: HttpServer | undefined;
  let dashboard: Dashboard | undefined;
  let signalled: ((signal: NodeJS.Signals) => void) | undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  const release = stopOnSignals((signal) => {
    log(`serve: ${signal}: aborting the current run (it goes back to the queue), closing the queue (again to force)`);
    signalled!(signal);
  });
  const stopAll = async (why: string) => {
    await http?.close();
    await dashboard?.close();
    await service?.stop(why);
  };
  // express and prom-client load here, not with the CLI: other commands do not pay for them.
  const { QUEUE_STATES, ServeMetrics, metricsRouter } = await import('../metrics/index');
  const { DEFAULT_HTTP_HOST, HttpServer: Http } = await import('../http/index');
  const { mountDashboard } = await import('../dashboard/index');
  const metrics = new ServeMetrics({
    workers: () => service?.scheduler.allWorkers() ?? [],
    jobCounts: async () => (counts ? counts.queue.getJobCounts(...QUEUE_STATES) : {}),
  });
  try {
    const location = locationOf(flags);
    const reportsDir = resolve(flags.reports ?? process.env.MOE_REPORTS_DIR ?? 'reports');
    service = await RunService.start({
      ...location,
      host: flags.host ?? process.env.MOE_SCHEDULER_HOST ?? '127.0.0.1',
      port: flags.port ?? envInt('MOE_SCHEDULER_PORT', 7000),
      reportsDir,
      rendezvousTimeoutMs: flags.rendezvousTimeout ?? envInt('MOE_RENDEZVOUS_TIMEOUT_MS', DEFAULT_RENDEZVOUS_TIMEOUT_MS),
      heartbeatIntervalMs: flags.heartbeatInterval ?? envInt('MOE_HEARTBEAT_INTERVAL_MS', 1_000),
      heartbeatTimeoutMs: flags.heartbeatTimeout ?? envInt('MOE_HEARTBEAT_TIMEOUT_MS', 10_000),
      log,
      metrics,
    });
    const httpPort = flags.httpPort ?? (process.env.MOE_HTTP_PORT ? envInt('MOE_HTTP_PORT', 0) : undefined);
    if (httpPort !== undefined) {
      // The one HTTP server of serve: /metrics (public, for Prometheus), /healthz (public), the dashboard and
      // Bull Board (behind the cluster token when one is set). Other modules mount theirs on `http`.
      counts = await RunQueue.connect(location); // a queue handle of its own: the depth is read at each scrape
      http = new Http({ host: flags.httpHost ?? process.env.MOE_HTTP_HOST ?? DEFAULT_HTTP_HOST, port: httpPort, log });
      http.mount('/', metricsRouter(metrics.registry), { public: true });
      dashboard = await mountDashboard(http, service, location, reportsDir);
      const url = await http.listen();
      log(`serve: HTTP on ${url}: metrics at /metrics`, { httpAddress: url.replace(/^http:\/\//, '') });
      log(`serve: dashboard on ${url}${http.tokenRequired ? ' (cluster token required: open it with ?token=<MOE_CLUSTER_TOKEN>)' : ''}`);
    }
    const signal = await stopped;
    await stopAll(signal);
    return EXIT.ok;
  } catch (error) {
    await stopAll('error');
    return onError(error);
  } finally {
    await http?.close();
    await counts?.close();
    release();
  }
}

/** Adds `serve` to `program`; the action sets `process.exitCode`. */
export function addServeCommand(program: Command, reportError: OnError): void {
  const onError = withRedisHint(reportError);
  locationOptions(
    program
      .command('serve')
      .description(
        'run the scheduler as a service: workers register on their own (moe worker --scheduler HOST:PORT); runs come from the BullMQ queue "runs" (moe submit), one at a time; SIGTERM aborts the current run and puts it back in the queue',
      )
      .option('--host <host>', 'interface the Scheduler service binds (default: $MOE_SCHEDULER_HOST, else 127.0.0.1)')
      .option('--port <port>', 'its port (default: $MOE_SCHEDULER_PORT, else 7000)', integer('--port'))
      .option('--reports <dir>', 'reports go to <dir>/<job id>/ (default: $MOE_REPORTS_DIR, else ./reports)')
      .option('--rendezvous-timeout <ms>', `how long a run waits for its workers (default: $MOE_RENDEZVOUS_TIMEOUT_MS, else ${DEFAULT_RENDEZVOUS_TIMEOUT_MS})`, integer('--rendezvous-timeout', 1))
      .option('--heartbeat-interval <ms>', 'heartbeat interval told to workers (default: $MOE_HEARTBEAT_INTERVAL_MS, else 1000)', integer('--heartbeat-interval', 1))
      .option('--heartbeat-timeout <ms>', 'silence after which a worker is lost (default: $MOE_HEARTBEAT_TIMEOUT_MS, else 10000)', integer('--heartbeat-timeout', 1))
      .option('--http-port <port>', 'serve HTTP on this port: the dashboard, Bull Board, /healthz, GET /metrics; 0: any free one (default: $MOE_HTTP_PORT, else no HTTP server)', integer('--http-port'))
      .option('--http-host <host>', 'interface the HTTP server binds (default: $MOE_HTTP_HOST, else 127.0.0.1)'),
  ).action(async (flags: ServeFlags) => {
    process.exitCode = await serveCommand(flags, onError);
  });
}
