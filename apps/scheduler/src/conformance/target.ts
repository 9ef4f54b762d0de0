/**
 * The worker under test when the kit starts it: a shell command, run in its own process group
 * (so a wrapper such as `npx` and the worker it starts are stopped together), with the kit's
 * scheduler address put in for `{scheduler}` (or appended as `--scheduler <address>`).
 */
import { spawn, type ChildProcess } from 'node:child_process';

const TAIL = 20;

/** `command` with `{scheduler}` replaced, or `--scheduler <address>` appended when it has no placeholder. */
export function commandFor(command: string, schedulerAddress: string): string {
  return command.includes('{scheduler}') ? command.replaceAll('{scheduler}', schedulerAddress) : `${command} --scheduler ${schedulerAddress}`;
}

export class TargetCommand {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  readonly exited: Promise<void>;

  constructor(
    readonly command: string,
    cwd: string,
    onLine?: (line: string) => void,
  ) {
    this.child = spawn(command, { shell: true, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let partial = '';
    const push = (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        if (this.lines.length > TAIL) this.lines.shift();
        onLine?.(line);
      }
    };
    this.child.stdout!.setEncoding('utf8').on('data', push);
    this.child.stderr!.setEncoding('utf8').on('data', push);
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      }),
    );
    this.child.once('error', () => {}); // a failed spawn shows as an exit with code 127 from the shell
  }

  /** "exited with code 1; its last output: ..." */
  describeExit(): string {
    const how = this.exit?.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit?.code}`;
    return `the command ${how}${this.lines.length ? `; its last output:\n    ${this.lines.slice(-8).join('\n    ')}` : ''}`;
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the shell exited. */
  async stop(graceMs = 3_000): Promise<void> {
    if (this.exit || this.child.pid === undefined) return;
    const group = -this.child.pid;
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(group, s);
      } catch {
        // the group is gone
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    signal('SIGKILL'); // whatever of the group outlived the shell
  }

  /** SIGKILL to the group now (safe in a process 'exit' handler). */
  kill(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
