/**
 * One worker process started by the scheduler: `node --initial-old-space-size=128 --import tsx apps/worker/src/main.ts ...`
 * (DATA_PLANE_NODE_FLAGS: a process that moves frames).
 * Keeps the last lines of its output for error messages, knows whether its exit was asked for,
 * and can be stopped politely (SIGTERM) or not (SIGKILL).
 */
import { DATA_PLANE_NODE_FLAGS } from '@moe/comm';
import { readableLine } from '@moe/log';
import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { WorkerProcessExitError } from '../errors';
import { PARENT_GUARD, REPO_ROOT, WORKER_MAIN } from '../paths';

export interface WorkerProcessOptions {
  workerId: string;
  /** host:port of the scheduler service it registers with. */
  scheduler: string;
  /** Interface the worker binds (port 0: any free port). Default 127.0.0.1. */
  host?: string;
  backend?: string;
  /** More flags for the worker, passed through as given. */
  extraArgs?: readonly string[];
  /** Script run instead of apps/worker/src/main.ts (tests use stand-ins). */
  entry?: string;
  /** Cluster token, passed in the environment (MOE_CLUSTER_TOKEN; "" clears it), never on the command line. */
  token?: string;
  /** Called with every line the worker writes to stdout or stderr. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

const TAIL_LINES = 20;

/** Keeps the last `TAIL_LINES` complete lines of a stream. */
class LineTail {
  readonly lines: string[] = [];
  private partial = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) this.add(raw.replace(/\r$/, ''));
  }
  flush(): void {
    if (this.partial) this.add(this.partial);
    this.partial = '';
  }
  private add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > TAIL_LINES) this.lines.shift();
    this.onLine(line);
  }
}

export class WorkerProcess {
  readonly workerId: string;
  readonly child: ChildProcess;
  /** host:port from its "worker <id> listening on <address>" line; "" until then. */
  address = '';
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  /** Set when the process could not be started at all (spawn error). */
  spawnError?: Error;
  /** True once the exit was asked for (`stop`/`kill`): such an exit is not a failure. */
  stopping = false;
  /** Resolves when the process has exited (or never started). */
  readonly exited: Promise<void>;
  private readonly stdout: LineTail;
  private readonly stderr: LineTail;
  private readonly exitListeners = new Set<(p: WorkerProcess) => void>();

  constructor(readonly options: WorkerProcessOptions) {
    this.workerId = options.workerId;
    const args = [
      ...DATA_PLANE_NODE_FLAGS,
      '--import',
      'tsx',
      '--import',
      pathToFileURL(PARENT_GUARD).href,
      options.entry ?? WORKER_MAIN,
      '--scheduler',
      options.scheduler,
      '--host',
      options.host ?? '127.0.0.1',
      '--port',
      '0',
      '--backend',
      options.backend ?? 'cpu',
      '--worker-id',
      options.workerId,
      ...(options.extraArgs ?? []),
    ];
    const listening = `worker ${options.workerId} listening on `;
    this.stdout = new LineTail((line) => {
      if (!this.address && line.startsWith(listening)) this.address = line.slice(listening.length).trim();
      options.onLine?.(line, 'stdout');
    });
    this.stderr = new LineTail((line) => options.onLine?.(line, 'stderr'));
    // cwd: the repo root, so `--import tsx` and the workspace packages resolve from node_modules.
    this.child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: options.token === undefined ? process.env : { ...process.env, MOE_CLUSTER_TOKEN: options.token } });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.stdout.push(chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise<void>((resolve) => {
      let finished = false;
      const finish = () => {
        if (finished) return; // a failed spawn may report both 'error' and 'close'
        finished = true;
        this.stdout.flush();
        this.stderr.flush();
        resolve();
        for (const listener of this.exitListeners) listener(this);
      };
      this.child.once('error', (error) => {
        if (this.child.pid === undefined) {
          this.spawnError = error;
          finish();
        }
      });
      // 'close' (not 'exit'): by then stdout and stderr are drained, so the tail is complete.
      this.child.once('close', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        finish();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === null && this.signal === null && !this.spawnError;
  }

  /** Calls `listener` once the process has exited; returns the unsubscribe function. */
  onExit(listener: (p: WorkerProcess) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Last lines of stderr (of stdout when stderr was empty), log lines as level and message. */
  outputTail(lines = 10): string[] {
    const source = this.stderr.lines.length ? this.stderr.lines : this.stdout.lines;
    // A worker's stderr is pino JSON off a terminal: quote the message, not the object.
    return source.slice(-lines).map(readableLine);
  }

  /** The error that describes this process's (unexpected) end; `context` says when it happened. */
  exitError(context: string): WorkerProcessExitError {
    const tail = this.outputTail();
    const how = this.spawnError
      ? `could not be started (${this.spawnError.message})`
      : this.signal
        ? `was killed by ${this.signal}`
        : `exited with code ${this.exitCode}`;
    const output = tail.length ? `; its last output:\n  ${tail.join('\n  ')}` : '; it wrote nothing to stderr';
    return new WorkerProcessExitError(
      `worker process ${this.workerId} (pid ${this.pid ?? '-'}) ${how} ${context}${output}`,
      this.workerId,
      this.exitCode,
      this.signal,
      tail,
    );
  }

  /** SIGTERM (the worker's graceful path), then SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL now, synchronously (safe inside a process 'exit' handler). */
  kill(): void {
    this.stopping = true;
    if (this.running) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
