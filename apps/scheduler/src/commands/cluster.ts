/** `moe cluster`, and the cluster flags `moe train` shares: the scheduler's address, liveness and rendezvous, the workers it starts. */
import { lineLog, log } from '@moe/log';
import { Command } from 'commander';
import { integer } from './flags';
import { interruptOn, reportError } from './exit';
import { LocalCluster, MAX_LOCAL_WORKERS } from '../control/local-cluster';
import { DEFAULT_RENDEZVOUS_TIMEOUT_MS } from '../control/rendezvous';

export interface ClusterFlags {
  workers: number;
  backend: string;
  workerArgs?: string;
  host: string;
  port: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  rendezvousTimeout: number;
  verbose: boolean;
  token?: string;
}

/** "--a 1 --b" as ["--a", "1", "--b"]. */
export const splitArgs = (text: string | undefined) => (text ? text.trim().split(/\s+/).filter(Boolean) : []);

/** The scheduler's address, liveness and rendezvous settings, as the cluster flags give them. */
export function schedulerSettingsOf(flags: ClusterFlags) {
  return {
    host: flags.host,
    port: flags.port,
    heartbeatIntervalMs: flags.heartbeatInterval,
    heartbeatTimeoutMs: flags.heartbeatTimeout,
    rendezvousTimeoutMs: flags.rendezvousTimeout,
    token: flags.token,
  };
}

/** Adds the cluster flags to `command`. */
export function clusterOptions(command: Command): Command {
  return command
    .option('-w, --workers <n>', `worker processes (at most ${MAX_LOCAL_WORKERS} on one machine)`, integer('--workers', 1, MAX_LOCAL_WORKERS), 4)
    .option('--backend <name>', 'compute backend of the workers', 'cpu')
    .option('--worker-args <flags>', 'more flags for every worker process, e.g. "--peer-timeout 60000"')
    .option('--host <host>', 'interface the scheduler and the workers bind', '127.0.0.1')
    .option('--port <port>', 'scheduler port (0: any free port)', integer('--port'), 0)
    .option('--heartbeat-interval <ms>', 'heartbeat interval told to workers', integer('--heartbeat-interval', 1), 1_000)
    .option('--heartbeat-timeout <ms>', 'silence after which a worker is lost', integer('--heartbeat-timeout', 1), 10_000)
    .option('--rendezvous-timeout <ms>', 'how long to wait for the workers to register', integer('--rendezvous-timeout', 1), DEFAULT_RENDEZVOUS_TIMEOUT_MS)
    .option('-v, --verbose', "print the scheduler's log and every worker's output", false)
    .option('--token <token>', 'cluster token required from every worker and peer (default: MOE_CLUSTER_TOKEN; prefer the variable, flags show in ps)');
}

/** Starts the scheduler and the workers, prints where they are, and holds them until a signal or a failure. */
export async function clusterCommand(flags: ClusterFlags): Promise<number> {
  const controller = new AbortController();
  const release = interruptOn(controller);
  const logLine = lineLog(log());
  let cluster: LocalCluster | undefined;
  try {
    cluster = await LocalCluster.start({
      workers: flags.workers,
      backend: flags.backend,
      workerArgs: splitArgs(flags.workerArgs),
      ...schedulerSettingsOf(flags),
      echoWorkerOutput: flags.verbose,
      log: flags.verbose ? logLine : undefined,
      abort: controller.signal,
    });
    console.log(`scheduler listening on ${cluster.scheduler.address}`);
    for (const line of cluster.describe()) console.log(line);
    console.log(`${flags.workers} workers up; Ctrl-C stops them all`);
    const running = cluster;
    const error = await new Promise<Error>((resolve) => {
      running.onFailure(resolve);
      controller.signal.addEventListener('abort', () => resolve(controller.signal.reason as Error), { once: true });
    });
    throw error;
  } catch (error) {
    return reportError(controller.signal.aborted ? controller.signal.reason : error);
  } finally {
    await cluster?.stop();
    release();
  }
}

/** Adds `cluster` to `program`; the action sets `process.exitCode`. */
export function addClusterCommand(program: Command, run: (flags: ClusterFlags) => Promise<number> = clusterCommand): void {
  clusterOptions(
    program
      .command('cluster')
      .description('start the scheduler and N worker processes on this machine; print their addresses; stop them all on Ctrl-C'),
  ).action(async (flags: ClusterFlags) => {
    process.exitCode = await run(flags);
  });
}
