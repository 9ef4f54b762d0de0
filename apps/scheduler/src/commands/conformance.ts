/**
 * `moe conformance`: the conformance kit on the command line. Exit code 0 when no check failed,
 * 1 when one did, 2 for bad input (neither or both of --worker and --command, bad JSON).
 */
import { lineLog, log } from '@moe/log';
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { integer, jsonObject } from './flags';
import { EXIT, onSignals, signalExitCode } from './exit';
import { formatCheck, formatConformance, runConformance, CHECKS, type ConformanceOptions } from '../conformance/run';

interface ConformanceFlags {
  worker?: string;
  command?: string;
  cwd?: string;
  host: string;
  schedulerPort: number;
  peerBackend?: string;
  backendOptions?: Record<string, unknown>;
  modeled: 'auto' | 'yes' | 'no';
  peerTimeout: number;
  deadline: number;
  rpcTimeout: number;
  registerTimeout: number;
  skipRegister: boolean;
  json?: string;
  verbose: boolean;
}

/** Runs the kit with the command line's flags, prints a line per check; resolves with the exit code. */
export async function conformanceCommand(flags: ConformanceFlags): Promise<number> {
  if (!flags.worker === !flags.command) {
    log().error('moe conformance: give exactly one of --worker <host:port> and --command "<command that starts the worker>"');
    return EXIT.badInput;
  }
  const options: ConformanceOptions = {
    worker: flags.worker,
    command: flags.command,
    cwd: flags.cwd,
    host: flags.host,
    schedulerPort: flags.schedulerPort,
    peerBackend: flags.peerBackend,
    backendOptions: flags.backendOptions,
    modeled: flags.modeled === 'auto' ? undefined : flags.modeled === 'yes',
    peerTimeoutMs: flags.peerTimeout,
    deadlineMs: flags.deadline,
    rpcTimeoutMs: flags.rpcTimeout,
    registerTimeoutMs: flags.registerTimeout,
    skipRegister: flags.skipRegister,
    log: (line) => (flags.verbose || line.includes('waiting for the worker') ? log().info(line) : undefined),
    onCheck: (result) => console.log(formatCheck(result, Math.max(...CHECKS.map(([id]) => id.length)))),
  };
  // Ctrl-C: exit; the kit's 'exit' hook kills what it started.
  const release = onSignals((signal) => process.exit(signalExitCode(signal)));
  try {
    const report = await runConformance(options);
    console.log(formatConformance(report).split('\n').pop());
    if (flags.json) writeFileSync(flags.json, JSON.stringify(report, null, 2));
    return report.ok ? EXIT.ok : EXIT.failed;
  } catch (error) {
    lineLog(log())(`moe conformance: ${(error as Error).message}`, { level: 'error', err: error });
    return EXIT.failed;
  } finally {
    release();
  }
}

/** Adds `moe conformance` to `program` (the `moe` command line). */
export function registerConformanceCommand(program: Command): Command {
  return program
    .command('conformance')
    .description(
      'check a worker against the contract (docs/custom-workers.md): registration, LoadShard, RunStep with known inputs, ' +
        'codecs, zero-token frames, malformed frames, a deadline; prints PASS/FAIL/SKIP per check with the reason',
    )
    .option('--worker <host:port>', 'a running worker; start it with --scheduler pointing at the kit (see --scheduler-port)')
    .option('--command <command>', 'a shell command that starts the worker; {scheduler} becomes the kit\'s scheduler address (else --scheduler <address> is appended)')
    .option('--cwd <dir>', 'directory the --command runs in (default: the current one)')
    .option('--host <host>', 'interface of the kit\'s scheduler and peers', '127.0.0.1')
    .option('--scheduler-port <port>', 'port of the kit\'s scheduler (0: any free port)', integer('--scheduler-port'), 0)
    .option('--peer-backend <name>', 'backend of the kit\'s reference peer (default: the worker\'s own if cpu or sim, else cpu)')
    .option('--backend-options <json>', 'LoadShard backend options of every run, e.g. \'{"profile":"H100","dilation":1}\' for sim', jsonObject('--backend-options'))
    .addOption(new Option('--modeled <when>', 'the worker models a device and does not learn: compare no numbers').choices(['auto', 'yes', 'no']).default('auto'))
    .option('--peer-timeout <ms>', 'peer timeout of the kit\'s reference peer', integer('--peer-timeout', 1), 3_000)
    .option('--deadline <ms>', 'RunStep deadline of the deadline check', integer('--deadline', 1), 5_000)
    .option('--rpc-timeout <ms>', 'deadline of every other RPC', integer('--rpc-timeout', 1), 20_000)
    .option('--register-timeout <ms>', 'how long to wait for the worker to register', integer('--register-timeout', 1), 30_000)
    .option('--skip-register', 'do not wait for a Register (a --worker registered elsewhere)', false)
    .option('--json <file>', 'write the report as JSON')
    .option('-v, --verbose', 'print what the kit does and the worker\'s output', false)
    .action(async (flags: ConformanceFlags) => {
      process.exitCode = await conformanceCommand(flags);
    });
}
