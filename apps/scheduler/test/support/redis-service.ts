/**
 * Processes of the run service under test: `moe serve`, `moe worker`, `moe submit` ..., each a
 * real `node bin/moe.mjs` child. Every child preloads the scheduler's parent guard (it stops when
 * this test process dies, however it dies), and `stopAll` ends whatever is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PARENT_GUARD, REPO_ROOT } from '../../src/paths';

export const MOE_BIN = join(REPO_ROOT, 'bin', 'moe.mjs');

export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcExit>;
  stdout = '';
  stderr = '';
  private readonly lineWaiters = new Set<() => void>();

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => this.append('stdout', d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => this.append('stderr', d));
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => resolve({ code, signal })));
    LIVE.add(this);
    void this.exited.then(() => LIVE.delete(this));
  }

  private append(stream: 'stdout' | 'stderr', data: string): void {
    this[stream] += data;
    for (const wake of [...this.lineWaiters]) wake();
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once the output matches `pattern`; rejects after `timeoutMs` or when the process exits first. */
  waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.lineWaiters.delete(check);
      };
      const check = () => {
        const match = this.output.match(pattern);
        if (match) {
          done();
          resolve(match);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no output matching ${pattern} within ${timeoutMs} ms; output:\n${this.output.slice(-3_000)}`));
      }, timeoutMs);
      this.lineWaiters.add(check);
      void this.exited.then(({ code, signal }) => {
        check();
        if (this.lineWaiters.has(check)) {
          done();
          reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before printing ${pattern}; output:\n${this.output.slice(-3_000)}`));
        }
      });
      check();
    });
  }

  /** `signal`, then SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<ProcExit> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      const exit = await this.exited;
      clearTimeout(timer);
      return exit;
    }
    return this.exited;
  }
}

const LIVE = new Set<Proc>();
process.on('exit', () => LIVE.forEach((p) => p.running && p.child.kill('SIGKILL')));

/** `node bin/moe.mjs <args>` with the parent guard preloaded. */
export function startMoe(name: string, args: readonly string[], env: NodeJS.ProcessEnv): Proc {
  return new Proc(name, process.execPath, ['--import', pathToFileURL(PARENT_GUARD).href, MOE_BIN, ...args], env);
}

/** Runs `moe <args>` to its end (killed after `timeoutMs`). */
export async function runMoe(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Proc & { exit: ProcExit }> {
  const proc = startMoe(`moe ${args[0]}`, args, env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return Object.assign(proc, { exit });
}

/** Stops every process these helpers started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...LIVE].map((p) => p.stop('SIGTERM', 3_000)));
}
