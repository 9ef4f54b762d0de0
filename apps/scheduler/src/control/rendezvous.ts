/**
 * The Scheduler gRPC service: workers Register and Heartbeat here. It keeps the roster (in
 * registration order), gathers a run's workers (`waitForWorkers`) and watches their liveness: a
 * worker not heard from within `heartbeatTimeoutMs` is lost, and every listener hears of it.
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, envToken, loadMoeProto, requireToken, serverCredentials, type SchedulerHandlers } from '@moe/comm';
import { RendezvousTimeoutError, WorkerLostError } from '../errors';

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
  log?: (line: string) => void;
  /**
   * Cluster token required (gRPC metadata `x-moe-token`) on Register and Heartbeat; callers
   * without it get UNAUTHENTICATED and are logged with their address. Default:
   * `MOE_CLUSTER_TOKEN`; "" or unset: none.
   */
  token?: string;
}

/** How long a run waits for its workers to register unless told otherwise. */
export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 60_000;

type LostListener = (worker: RegisteredWorker, error: WorkerLostError) => void;
type RegisterListener = (worker: RegisteredWorker) => void;

/** Registered workers as "w-1 at 127.0.0.1:40211, ...". */
export function describeWorkers(workers: readonly RegisteredWorker[]): string {
  return workers.map((w) => `${w.workerId} at ${w.address}`).join(', ');
}

export class SchedulerService {
  private readonly server = new grpc.Server(GRPC_OPTIONS);
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
  /** host:port the service listens on; set by `start`. */
  address = '';
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  /** The cluster token this scheduler requires, and its workers' handles send (undefined: none). */
  readonly token: string | undefined;

  constructor(private readonly options: SchedulerServiceOptions = {}) {
    this.token = options.token === undefined ? envToken() : options.token || undefined;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    if (this.heartbeatTimeoutMs <= this.heartbeatIntervalMs) {
      throw new RangeError(
        `heartbeat timeout ${this.heartbeatTimeoutMs} ms must exceed the heartbeat interval ${this.heartbeatIntervalMs} ms`,
      );
    }
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  /** Binds and serves; returns host:port (the port the OS picked when 0 was asked). */
  async start(): Promise<string> {
    if (this.started) return this.address;
    const proto = loadMoeProto();
    this.server.addService(
      proto.moe.v1.Scheduler.service,
      requireToken(this.handlers(), this.token, 'Scheduler', (line) => (this.options.log ?? console.error)(`scheduler: ${line}`)),
    );
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

  private handlers(): SchedulerHandlers {
    return {
      Register: (call, callback) => {
        const r = call.request;
        if (!r.workerId || !r.address) {
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `Register: worker_id ("${r.workerId}") and address ("${r.address}") must both be set`,
          });
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
          this.log(`scheduler: worker ${r.workerId} registered at ${r.address} (backend ${r.backend || '?'}, pid ${r.pid})`);
          for (const listener of this.registerListeners) listener(worker);
        }
        callback(null, { accepted: true, heartbeatIntervalMs: this.heartbeatIntervalMs });
      },
      Heartbeat: (call, callback) => {
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
    this.log(`scheduler: ${error.message}`);
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

  /** Every worker ever registered (lost ones included), in registration order. */
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
