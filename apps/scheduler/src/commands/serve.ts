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
import { DEFAULT_HTTP_PORT, HttpServer } from '../http/index';
import { mountDashboard, type Dashboard } from '../dashboard/index';

interface ServeFlags extends LocationFlags {
  host?: string;
  port?: number;
  httpHost?: string;
  httpPort?: number;
  reports?: string;
  rendezvousTimeout?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
}

/** Serves runs until a signal; resolves with the exit code. */
export async function serveCommand(flags: ServeFlags, onError: OnError): Promise<number> {
  const log = (line: string) => console.error(line);
  let service: RunService | undefined;
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
    });
    // The one HTTP server of serve: the dashboard, Bull Board and /healthz; other modules mount theirs on `http`.
    http = new HttpServer({ host: flags.httpHost ?? process.env.MOE_HTTP_HOST ?? '127.0.0.1', port: flags.httpPort ?? envInt('MOE_HTTP_PORT', DEFAULT_HTTP_PORT), log });
    dashboard = await mountDashboard(http, service, location, reportsDir);
    log(`serve: dashboard on ${await http.listen()}${http.tokenRequired ? ' (cluster token required: open it with ?token=<MOE_CLUSTER_TOKEN>)' : ''}`);
    const signal = await stopped;
    await stopAll(signal);
    return EXIT.ok;
  } catch (error) {
    await stopAll('error');
    return onError(error);
  } finally {
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
      .option('--http-host <host>', 'interface of the dashboard and /healthz (default: $MOE_HTTP_HOST, else 127.0.0.1)')
      .option('--http-port <port>', 'their port, 0 for any free one (default: $MOE_HTTP_PORT, else 8080)', integer('--http-port')),
  ).action(async (flags: ServeFlags) => {
    process.exitCode = await serveCommand(flags, onError);
  });
}
