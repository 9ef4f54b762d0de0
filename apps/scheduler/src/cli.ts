/**
 * `moe`: the command line. Thin: it assembles the commands (one file each under commands/) into
 * one program and maps what escapes them to exit codes (commands/exit.ts). Run through
 * bin/moe.mjs (`npx moe ...`).
 */
import { Command, CommanderError } from 'commander';
import { configureLogging, parseLogLevel, type LogLevel } from '@moe/log';
import { addBenchCommand } from './commands/bench';
import { addClusterCommand, type ClusterFlags } from './commands/cluster';
import { EXIT, reportError } from './commands/exit';
import { addCancelCommand } from './commands/cancel';
import { addPlanCommand } from './commands/plan';
import { addBenchCommsCommand } from './commands/bench-comms';
import { addRunsCommand } from './commands/runs';
import { addHealthCommand, healthCommand } from './commands/health';
import { addServeCommand } from './commands/serve';
import { addSimulateCommand } from './commands/simulate';
import { addSubmitCommand } from './commands/submit';
import { addTrainCommand, type TrainFlags } from './commands/train';
import { addWorkerCommand, workerCommand } from './commands/worker';
import { registerConformanceCommand } from './conformance/index';

export { EXIT } from './commands/exit';

export function buildProgram(run: { train?: (f: TrainFlags) => Promise<number>; cluster?: (f: ClusterFlags) => Promise<number> } = {}): Command {
  const program = new Command('moe')
    .description('expert-parallel Mixture-of-Experts training: a scheduler and worker processes over gRPC')
    .exitOverride()
    .showHelpAfterError('(moe <command> --help for usage)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent; the workers it starts inherit it (default: $MOE_LOG_LEVEL, else info)', (v: string) =>
      parseLogLevel(v, '--log-level'),
    )
    // Log lines (stderr; JSON unless a terminal) are named after the command: serve, bench, train, ...
    .hook('preAction', (root, action) => {
      configureLogging({ name: action.name(), level: root.opts<{ logLevel?: LogLevel }>().logLevel });
    });
  addTrainCommand(program, run.train);
  addClusterCommand(program, run.cluster);
  addBenchCommand(program, reportError);
  addPlanCommand(program, reportError);
  addBenchCommsCommand(program, reportError);
  addSimulateCommand(program, reportError);
  addServeCommand(program, reportError);
  addSubmitCommand(program, reportError);
  addRunsCommand(program, reportError);
  addCancelCommand(program, reportError);
  registerConformanceCommand(program);
  addWorkerCommand(program);
  addHealthCommand(program);
  return program;
}

/**
 * Runs the command line `argv` (without node and the script). Resolves with the exit code, or
 * undefined when this process went on to be a worker (and must not exit).
 */
export async function main(argv: readonly string[]): Promise<number | undefined> {
  if (argv[0] === 'worker') return workerCommand(argv.slice(1));
  if (argv[0] === 'health') return healthCommand(argv.slice(1));
  const program = buildProgram();
  process.exitCode = undefined;
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.badInput; // help asked for: 0; usage error or help for a missing command: 2
    }
    return reportError(error);
  }
  const code = process.exitCode;
  return typeof code === 'number' ? code : EXIT.ok;
}
