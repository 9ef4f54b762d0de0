/**
 * The Scheduler gRPC service: workers Register, Heartbeat and Deregister here. It keeps the roster
 * (in registration order), gathers a run's workers (`waitForWorkers`) and watches their liveness: a
 * worker not heard from within `heartbeatTimeoutMs` is lost, and every listener hears of it.
 *
 * A run's workers are the run's: a worker that holds no rank in the current run can register,
 * go silent or deregister without touching the run (it is dropped from the roster when lost).
 * A scheduler started for one run (`admit`) accepts only the workers that run needs and tells
 * the others why (RegisterResponse.reason); they stop.
 */
import { lineLog, log as processLog, type LogFields, type LogLine } from '@moe/log';
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, envToken, guardedServerOptions, loadMoeProto, serverCredentials, undecodableReason, type SchedulerHandlers } from '@moe/comm';
import { RendezvousTimeoutError, WorkerLostError } from '../errors';
import { registrationProblem, workerIdProblem } from './register-check';

export interface RegisteredWorker {
  workerId: string;
  /** host:port of its Worker and Peer services. */
  address: string;
  backend: string;
  deviceProfile: string;
  pid: number;
  /** Registration order, 0-based: the rank it gets when a run takes all workers in order. */
  order: number;
  registeredAt: number;
  /** Last Register or Heartbeat, `Date.now()` ms. */
  lastSeen: number;
  /** Run and step of its last heartbeat ("" and 0 when idle). */
  runId: string;
  step: number;
  lost: boolean;
}

export interface SchedulerServiceOptions {
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port to bind; 0 (default) picks a free one. */
  port?: number;
  /** Told to every worker at Register. Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /** Silence after which a worker is lost. Default 10 000 ms (ten heartbeats). */
  heartbeatTimeoutMs?: number;
  /** Lines carry workerId (and rank once it holds one); a lost worker is a warning. */
  log?: LogLine;
  /**
   * Cluster token required (gRPC metadata `x-moe-token`) on Register and Heartbeat; callers
   * without it get UNAUTHENTICATED and are logged with their address. Default:
   * `MOE_CLUSTER_TOKEN`; "" or unset: none.
   */
  token?: string;
  /**
   * A scheduler for one run: accept only the workers with these ids (`moe train`, `moe cluster`
   * start them) or only the first `count` (workers started elsewhere). Others are refused with
   * the reason. Default: every worker (`moe serve`'s pool).
   */
  admit?: { ids?: readonly string[]; count?: number };
}

/** Largest request the Scheduler service reads (Register, Heartbeat, Deregister are far smaller). */
export const SCHEDULER_MAX_REQUEST_BYTES = 1024 * 1024;

/** How long a run waits for its workers to register unless told otherwise. */
export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 60_000;

type LostListener = (worker: RegisteredWorker, error: WorkerLostError) => void;
type RegisterListener = (worker: RegisteredWorker) => void;

/** Registered workers as "w-1 at 127.0.0.1:40211, ...". */
export function describeWorkers(workers: readonly RegisteredWorker[]): string {
  return workers.map((w) => `${w.workerId} at ${w.address}`).join(', ');
}

export class SchedulerService {
  private readonly server: grpc.Server;
  private readonly workers = new Map<string, RegisteredWorker>();
  private readonly lostListeners = new Set<LostListener>();
  private readonly registerListeners = new Set<RegisterListener>();
  /** Rank of each worker in the current run, by worker id. */
  private ranks = new Map<string, number>();
  private watchdog?: NodeJS.Timeout;
  private nextOrder = 0;
  private lastTick = Date.now();
  private started = false;
  private closed = false;
  /** Set by `expectDepartures`: deregistrations are the cluster stopping, not losses. */
  private departing = false;
  /** host:port the service listens on; set by `start`. */
  address = '';
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  /** The cluster token this scheduler requires, and its workers' handles send (undefined: none). */
  readonly token: string | undefined;

  constructor(private readonly options: SchedulerServiceOptions = {}) {
    this.token = options.token === undefined ? envToken() : options.token || undefined;
    // The token is checked on the call's metadata before its message is read (@moe/comm server-guard).
    // Its requests are a few hundred bytes: 1 MiB bounds what any call can make it hold, so no
    // receive slots are needed (a stranger stalling calls cannot hold up the workers' heartbeats).
    this.server = new grpc.Server(
      guardedServerOptions(
        { ...GRPC_OPTIONS, 'grpc.max_receive_message_length': SCHEDULER_MAX_REQUEST_BYTES },
        { token: this.token, log: (line) => (options.log ?? lineLog(processLog()))(`scheduler: ${line}`, { level: 'warn' }), maxConcurrentReceives: Number.POSITIVE_INFINITY },
      ),
    );
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    if (this.heartbeatTimeoutMs <= this.heartbeatIntervalMs) {
      throw new RangeError(
        `heartbeat timeout ${this.heartbeatTimeoutMs} ms must exceed the heartbeat interval ${this.heartbeatIntervalMs} ms`,
      );
    }
  }

  private log(line: string, fields?: LogFields): void {
    this.options.log?.(line, fields);
  }

  /** Binds and serves; returns host:port (the port the OS picked when 0 was asked). */
  async start(): Promise<string> {
    if (this.started) return this.address;
    const proto = loadMoeProto();
    this.server.addService(proto.moe.v1.Scheduler.service, this.guarded(this.handlers()));
    const host = this.options.host ?? '127.0.0.1';
    const wanted = `${host}:${this.options.port ?? 0}`;
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(wanted, serverCredentials(), (error, bound) =>
        error ? reject(new Error(`scheduler: cannot bind ${wanted}: ${error.message}`)) : resolve(bound),
      ),
    );
    this.started = true;
    this.address = `${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`;
    this.lastTick = Date.now();
    const tick = Math.max(50, Math.min(this.heartbeatIntervalMs, this.heartbeatTimeoutMs / 4));
    this.watchdog = setInterval(() => this.checkLiveness(), tick);
    this.watchdog.unref();
    return this.address;
  }

  /** Bytes that are not the request message: INVALID_ARGUMENT, saying so; the method never runs. */
  private guarded(handlers: SchedulerHandlers): SchedulerHandlers {
    const wrapped = Object.entries(handlers).map(([name, handler]) => [
      name,
      (call: { request: unknown; getPeer(): string }, callback: (error: grpc.StatusObject | null) => void) => {
        const reason = undecodableReason(call.request);
        if (reason) {
          this.log(`scheduler: refused ${name} from ${call.getPeer()}: ${reason}`, { level: 'warn' });
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `${name}: ${reason}`, metadata: new grpc.Metadata() });
          return;
        }
        (handler as (c: unknown, cb: unknown) => void)(call, callback);
      },
    ]);
    return Object.fromEntries(wrapped) as unknown as SchedulerHandlers;
  }

  /** Why this scheduler does not take `workerId` (undefined: it does). */
  private admissionProblem(workerId: string): string | undefined {
    const admit = this.options.admit;
    if (!admit) return undefined;
    if (admit.ids && !admit.ids.includes(workerId)) {
      return `this scheduler serves one run, with workers ${admit.ids.join(', ')}; worker ${workerId} is not one of them`;
    }
    if (admit.count !== undefined) {
      const others = this.liveWorkers().filter((w) => w.workerId !== workerId);
      if (others.length >= admit.count) {
        return `this scheduler serves one run of ${admit.count} workers and has them (${describeWorkers(others)}); worker ${workerId} is not needed`;
      }
    }
    return undefined;
  }

  private handlers(): SchedulerHandlers {
    return {
      Register: (call, callback) => {
        const r = call.request;
        const problem = registrationProblem(r);
        if (problem) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `Register: ${problem}` });
          return;
        }
        const refusal = this.admissionProblem(r.workerId);
        if (refusal) {
          this.log(`scheduler: refused worker ${r.workerId} at ${r.address}: ${refusal}`, { level: 'warn', workerId: r.workerId });
          callback(null, { accepted: false, heartbeatIntervalMs: this.heartbeatIntervalMs, reason: refusal });
          return;
        }
        const now = Date.now();
        const known = this.workers.get(r.workerId);
        if (known && !known.lost) {
          // The same process registering again (it missed our reply, or we restarted): keep its place.
          Object.assign(known, { address: r.address, backend: r.backend, deviceProfile: r.deviceProfile, pid: r.pid, lastSeen: now });
        } else {
          const worker: RegisteredWorker = {
            workerId: r.workerId,
            address: r.address,
            backend: r.backend,
            deviceProfile: r.deviceProfile,
            pid: r.pid,
            order: this.nextOrder++,
            registeredAt: now,
            lastSeen: now,
            runId: '',
            step: 0,
            lost: false,
          };
          this.workers.delete(r.workerId); // a lost worker coming back goes to the end of the line
          this.workers.set(r.workerId, worker);
          this.log(`scheduler: worker ${r.workerId} registered at ${r.address} (backend ${r.backend || '?'}, pid ${r.pid})`, { workerId: r.workerId });
          for (const listener of this.registerListeners) listener(worker);
        }
        callback(null, { accepted: true, heartbeatIntervalMs: this.heartbeatIntervalMs });
      },
      Heartbeat: (call, callback) => {
        const problem = workerIdProblem(call.request.workerId);
        if (problem) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `Heartbeat: ${problem}` });
          return;
        }
        const worker = this.workers.get(call.request.workerId);
        if (!worker || worker.lost) {
          callback(null, { known: false });
          return;
        }
        worker.lastSeen = Date.now();
        worker.runId = call.request.runId;
        worker.step = call.request.step;
        callback(null, { known: true });
      },
      Deregister: (call, callback) => {
        const problem = workerIdProblem(call.request.workerId);
        if (problem) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `Deregister: ${problem}` });
          return;
        }
        const worker = this.workers.get(call.request.workerId);
        if (!worker || worker.lost) {
          callback(null, { known: false });
          return;
        }
        if (this.departing) {
          // The cluster is being stopped: its workers leaving is the plan, not a loss.
          this.workers.delete(worker.workerId);
        } else {
          this.markLost(worker, `it deregistered (${call.request.reason || 'no reason given'})`);
        }
        callback(null, { known: true });
      },
    };
  }

  private checkLiveness(): void {
    const now = Date.now();
    const stalled = now - this.lastTick > this.heartbeatTimeoutMs / 2;
    this.lastTick = now;
    if (stalled) {
      // This process was not listening (its event loop was blocked): silence is ours, not theirs.
      for (const worker of this.workers.values()) worker.lastSeen = Math.max(worker.lastSeen, now);
      return;
    }
    for (const worker of this.workers.values()) {
      if (!worker.lost && now - worker.lastSeen > this.heartbeatTimeoutMs) {
        this.markLost(worker, `no heartbeat for ${now - worker.lastSeen} ms (timeout ${this.heartbeatTimeoutMs} ms)`);
      }
    }
  }

  /** Marks a worker lost (silent, or its process exited) and tells every listener. */
  markLost(workerOrId: RegisteredWorker | string, why: string): void {
    const worker = typeof workerOrId === 'string' ? this.workers.get(workerOrId) : workerOrId;
    if (!worker || worker.lost) return;
    worker.lost = true;
    const rank = this.ranks.get(worker.workerId) ?? -1;
    const who = rank >= 0 ? `rank ${rank} (worker ${worker.workerId} at ${worker.address})` : `worker ${worker.workerId} at ${worker.address}`;
    const error = new WorkerLostError(`${who} is lost: ${why}`, worker.workerId, rank);
    this.log(`scheduler: ${error.message}`, { level: 'warn', workerId: worker.workerId, ...(rank >= 0 ? { rank } : {}), ...(worker.runId ? { runId: worker.runId } : {}), err: error });
    // Not in the current run: nothing to report against, so it leaves the roster now.
    if (rank < 0) this.workers.delete(worker.workerId);
    for (const listener of this.lostListeners) listener(worker, error);
  }

  /** Calls `listener` whenever a worker is lost; returns the unsubscribe function. */
  onLost(listener: LostListener): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** Calls `listener` for every new registration; returns the unsubscribe function. */
  onRegister(listener: RegisterListener): () => void {
    this.registerListeners.add(listener);
    return () => this.registerListeners.delete(listener);
  }

  /** Live workers, in registration order. */
  liveWorkers(): RegisteredWorker[] {
    return [...this.workers.values()].filter((w) => !w.lost).sort((a, b) => a.order - b.order);
  }

  /** Every worker on the roster, in registration order: lost ones included while they held a rank in the current run. */
  allWorkers(): RegisteredWorker[] {
    return [...this.workers.values()].sort((a, b) => a.order - b.order);
  }

  /**
   * Resolves with the first `n` live workers in registration order, which become ranks 0..n-1
   * of the next run (lost-worker errors then name those ranks). Rejects with
   * `RendezvousTimeoutError` after `timeoutMs`, or at once with `abort`'s reason when given.
   */
  waitForWorkers(n: number, timeoutMs: number, abort?: AbortSignal): Promise<RegisteredWorker[]> {
    if (!Number.isInteger(n) || n < 1) return Promise.reject(new RangeError(`waitForWorkers: n=${n} must be a positive integer`));
    return new Promise<RegisteredWorker[]>((resolve, reject) => {
      const cleanup: (() => void)[] = [];
      const done = () => cleanup.forEach((f) => f());
      const check = () => {
        const live = this.liveWorkers();
        if (live.length < n) return;
        done();
        const chosen = live.slice(0, n);
        this.ranks = new Map(chosen.map((w, rank) => [w.workerId, rank]));
        // Lost workers of the previous run are nobody's now.
        for (const w of this.workers.values()) if (w.lost) this.workers.delete(w.workerId);
        resolve(chosen);
      };
      const timer = setTimeout(() => {
        done();
        const live = this.liveWorkers();
        reject(
          new RendezvousTimeoutError(
            `waited ${timeoutMs} ms for ${n} workers, ${live.length} registered` +
              (live.length ? ` (${describeWorkers(live)})` : '') +
              `; start more workers or raise --rendezvous-timeout`,
          ),
        );
      }, timeoutMs);
      cleanup.push(() => clearTimeout(timer));
      cleanup.push(this.onRegister(check));
      if (abort) {
        const onAbort = () => {
          done();
          reject(abort.reason instanceof Error ? abort.reason : new Error(String(abort.reason)));
        };
        if (abort.aborted) return onAbort();
        abort.addEventListener('abort', onAbort, { once: true });
        cleanup.push(() => abort.removeEventListener('abort', onAbort));
      }
      check();
    });
  }

  /** Rank of `workerId` in the current run, or -1. */
  rankOf(workerId: string): number {
    return this.ranks.get(workerId) ?? -1;
  }

  /** The cluster is stopping its workers: from now on a worker that deregisters simply leaves. */
  expectDepartures(): void {
    this.departing = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.lostListeners.clear();
    this.registerListeners.clear();
    if (!this.started) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2_000);
      force.unref();
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
