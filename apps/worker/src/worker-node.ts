import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  GRPC_OPTIONS,
  GrpcTransport,
  channelCredentials,
  clientOptions,
  envToken,
  guardedServerOptions,
  serverCredentials,
  PeerMailbox,
  PeerSocketServer,
  ShapedTransport,
  SocketTransport,
  tlsFromEnv,
  loadMoeProto,
  namedTensorMsg,
  peerServiceHandlers,
  type SchedulerClient,
  type Transport,
  type WorkerHandlers,
  undecodableReason,
} from '@moe/comm';
import { lineLog, log as processLog, type LogFields, type LogLine } from '@moe/log';
import type { Shard } from './backend';
import { StepExecutor, StepOpError } from './schedule/executor';
import { FlightRecorder } from './schedule/flight-recorder';
import { buildSchedule, SCHEDULE_NAMES } from '@moe/schedule';
import type { Op } from '@moe/schedule';
import { FailedPreconditionError, InvalidRequestError, RegistrationRefusedError } from './errors';
import { replicaGradientLength } from '@moe/model';
import { decodeShard, decodeStep } from './shard-decode';
import { deadline, remainingMs, statusOf } from './grpc-status';
import type { WorkerNodeOptions } from './worker-node-options';

export type { WorkerNodeOptions, WorkerStepRecord } from './worker-node-options';

type State = 'idle' | 'loaded' | 'running';

/**
 * A worker process's servers and lifecycle: serves Worker and Peer on one gRPC server,
 * registers with the scheduler, heartbeats, and runs steps on its backend.
 */
export class WorkerNode {
  readonly id: string;
  private readonly server: grpc.Server;
  private readonly mailbox = new PeerMailbox();
  private scheduler?: SchedulerClient;
  private heartbeat?: NodeJS.Timeout;
  private state: State = 'idle';
  private shard?: Shard;
  private transport?: Transport;
  /** The run's transport before link shaping: it says which planes frames went out over. */
  private dataPlane?: SocketTransport;
  private socketServer?: PeerSocketServer;
  private executor?: StepExecutor;
  private readonly schedules = new Map<string, Op[]>();
  /** The last ops of this worker's steps, running ones included; served by FlightRecord. */
  private readonly flight = new FlightRecorder(256);
  private currentStep = 0;
  address = '';
  private closed = false;

  private readonly token: string | undefined;

  constructor(private readonly options: WorkerNodeOptions) {
    this.id = options.workerId ?? `worker-${randomUUID().slice(0, 8)}`;
    this.token = options.token === undefined ? envToken() : options.token || undefined;
    this.logLine = options.log ?? lineLog(processLog());
    // Every call (Worker RPCs, Peer streams, FetchParams included) shows the token on its
    // metadata before a byte of its message is read; see @moe/comm's server-guard.
    this.server = new grpc.Server(
      guardedServerOptions(GRPC_OPTIONS, { token: this.token, log: (line) => this.log(`worker ${this.id}: ${line}`, { level: 'warn' }) }),
    );
  }

  private readonly logLine: LogLine;

  private log(line: string, fields?: LogFields): void {
    const run = this.shard ? { runId: this.shard.runId, rank: this.shard.rank } : {};
    this.logLine(line, { workerId: this.id, ...run, ...fields });
  }

  async start(): Promise<string> {
    const proto = loadMoeProto();
    const log = (line: string) => this.log(`worker ${this.id}: ${line}`, { level: 'warn' });
    const socketEndpoint = () => this.socketServer?.endpoint();
    this.server.addService(proto.moe.v1.Peer.service, peerServiceHandlers(this.mailbox, { token: this.token, log, socketEndpoint }));
    this.server.addService(proto.moe.v1.Worker.service, this.handlers());
    const host = this.options.host ?? '127.0.0.1';
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${this.options.port ?? 0}`, serverCredentials(), (error, bound) =>
        error ? reject(new Error(`worker ${this.id}: cannot bind ${host}:${this.options.port ?? 0}: ${error.message}`)) : resolve(bound),
      ),
    );
    this.address = this.options.advertise ?? `${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    if ((this.options.transport ?? 'auto') !== 'grpc') {
      // Served on the same interface as gRPC, reached at the advertised host; offered through Peer.DataPlanes.
      const advertiseHost = this.address.slice(0, this.address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
      this.socketServer = await PeerSocketServer.start({ host, advertiseHost, token: this.token, tls: tlsFromEnv(), log });
    }
    this.log(`worker ${this.id} listening on ${this.address}`);
    this.options.onListening?.(this.address);
    await this.register();
    return this.address;
  }

  private async register(): Promise<void> {
    const proto = loadMoeProto();
    this.scheduler = new proto.moe.v1.Scheduler(this.options.scheduler, channelCredentials(), clientOptions(this.token));
    const give = Date.now() + (this.options.registerTimeoutMs ?? 30_000);
    let lastError = '';
    for (let attempt = 0; ; attempt++) {
      let reply: { accepted: boolean; heartbeatIntervalMs: number; reason: string };
      try {
        reply = await new Promise<{ accepted: boolean; heartbeatIntervalMs: number; reason: string }>((resolve, reject) =>
          this.scheduler!.Register(
            {
              workerId: this.id,
              address: this.address,
              backend: this.options.backend.name,
              deviceProfile: this.options.backend.deviceProfile,
              pid: process.pid,
              // The executor runs every registered schedule on any backend; micro-batches need a backend that keeps their state apart.
              schedules: [...SCHEDULE_NAMES],
              maxMicroBatches: this.options.backend.maxMicroBatches ?? 1,
            },
            { deadline: deadline(5_000) },
            (error, response) => (error || !response ? reject(error ?? new Error('empty reply')) : resolve(response)),
          ),
        );
      } catch (error) {
        const code = (error as { code?: number }).code;
        // Refusals no retry can change: the token (or its absence) and the request itself.
        if (code === grpc.status.UNAUTHENTICATED || code === grpc.status.INVALID_ARGUMENT || code === grpc.status.PERMISSION_DENIED) {
          throw new RegistrationRefusedError(`worker ${this.id}: scheduler ${this.options.scheduler} refused to register it: ${(error as Error).message}`);
        }
        lastError = (error as Error).message;
        reply = { accepted: false, heartbeatIntervalMs: 0, reason: '' };
      }
      if (reply.accepted) {
        this.log(`worker ${this.id} registered with scheduler ${this.options.scheduler}`);
        this.options.onRegistration?.(true);
        this.startHeartbeat(reply.heartbeatIntervalMs || 1_000);
        return;
      }
      if (reply.reason) {
        // A scheduler started for one run that does not need this worker: stop, saying why.
        throw new RegistrationRefusedError(`worker ${this.id}: scheduler ${this.options.scheduler} did not accept it: ${reply.reason}`);
      }
      if (Date.now() > give || this.closed) {
        throw new Error(
          `worker ${this.id}: could not register with scheduler ${this.options.scheduler} (${lastError}); is the scheduler running there?`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
    }
  }

  private startHeartbeat(intervalMs: number): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      this.scheduler?.Heartbeat(
        { workerId: this.id, runId: this.shard?.runId ?? '', step: this.currentStep },
        { deadline: deadline(Math.max(1_000, intervalMs)) },
        (error, reply) => {
          if (!error && reply?.known) this.options.onRegistration?.(true);
          if (!error && reply && !reply.known && !this.closed) {
            this.options.onRegistration?.(false);
            this.log(`worker ${this.id}: scheduler does not know this worker any more; registering again`);
            clearInterval(this.heartbeat);
            this.register().catch((e: Error) => this.onRefused(e));
          }
        },
      );
    }, intervalMs);
    this.heartbeat.unref();
  }

  private handlers(): WorkerHandlers {
    const handlers = this.methodHandlers();
    // Bytes that were not the request message: INVALID_ARGUMENT, saying so; the method never runs.
    const guarded = Object.fromEntries(
      Object.entries(handlers).map(([name, handler]) => [
        name,
        (call: { request: unknown }, callback: (error: grpc.StatusObject | null) => void) => {
          const reason = undecodableReason(call.request);
          if (reason) {
            this.log(`worker ${this.id}: refused ${name}: ${reason}`, { level: 'warn' });
            callback({ code: grpc.status.INVALID_ARGUMENT, details: `${name}: ${reason}`, metadata: new grpc.Metadata() });
            return;
          }
          (handler as (c: unknown, cb: unknown) => void)(call, callback);
        },
      ]),
    );
    return guarded as unknown as WorkerHandlers;
  }

  private methodHandlers(): WorkerHandlers {
    return {
      LoadShard: (call, callback) => {
        this.loadShard(call.request).then(
          (checksum) => callback(null, { paramChecksum: checksum }),
          (error) => callback(statusOf(error)),
        );
      },
      RunStep: (call, callback) => {
        this.runStep(call.request, remainingMs(call.getDeadline())).then(
          (response) => callback(null, response),
          (error) => callback(statusOf(error)),
        );
      },
      FetchParams: (call, callback) => {
        this.fetchParams(call.request.runId, call.request.includeOptimizerState).then(
          (response) => callback(null, response),
          (error) => callback(statusOf(error)),
        );
      },
      Health: (_call, callback) => {
        callback(null, { workerId: this.id, state: this.state, runId: this.shard?.runId ?? '', rank: this.shard?.rank ?? 0 });
      },
      FlightRecord: (_call, callback) => {
        callback(null, { workerId: this.id, rank: this.shard?.rank ?? 0, step: this.flight.lastStep, ops: this.flight.entries() });
      },
      Shutdown: (call, callback) => {
        this.log(`worker ${this.id}: shutdown requested (${call.request.reason || 'no reason given'})`);
        callback(null, {});
        setImmediate(() => void this.close(`Shutdown: ${call.request.reason || 'no reason given'}`).then(() => process.exit(0)));
      },
    };
  }

  private async loadShard(request: Parameters<WorkerHandlers['LoadShard']>[0]['request']): Promise<string> {
    if (this.state === 'running') throw new FailedPreconditionError(`LoadShard: worker ${this.id} is running a step of run ${this.shard?.runId}`);
    const shard = decodeShard(request);
    const replicated = shard.replicatedExperts ?? [];
    if (replicated.length > 0 && !this.options.backend.sumsReplicaGradients) {
      throw new InvalidRequestError(
        `LoadShard: the placement holds expert${replicated.length > 1 ? 's' : ''} ${replicated.join(', ')} on several ranks (redundant experts), ` +
          `and backend "${this.options.backend.name}" does not sum replicated experts' gradients (Backend.sumsReplicaGradients); run it without --redundant-experts`,
      );
    }
    await this.transport?.close();
    const checksum = await this.options.backend.load(shard);
    const plane = this.options.transport ?? 'auto';
    const base = { runId: shard.runId, rank: shard.rank, peers: shard.peers, mailbox: this.mailbox, token: this.token };
    this.dataPlane = plane === 'grpc' ? undefined : new SocketTransport({ ...base, plane, server: this.socketServer, tls: tlsFromEnv() });
    const peerTransport = this.dataPlane ?? new GrpcTransport(base);
    // A simulated device also models its links: sends are shaped to the modeled bandwidth.
    const link = this.options.backend.linkModel?.();
    this.transport = link ? new ShapedTransport(peerTransport, link) : peerTransport;
    this.transport = this.options.wrapTransport?.(this.transport, link?.nodeSize) ?? this.transport;
    const replicas = shard.replicaPlacement && {
      placement: shard.replicaPlacement,
      gradientValues: replicaGradientLength(shard.model, replicated),
      layers: shard.model.layers,
    };
    this.executor = new StepExecutor(this.options.backend, this.transport, shard.expertOwner, this.flight, this.options.fault, replicas);
    this.shard = shard;
    this.flight.runId = shard.runId;
    this.state = 'loaded';
    this.log(`worker ${this.id}: run ${shard.runId}, rank ${shard.rank} of ${shard.worldSize}`, { runId: shard.runId, rank: shard.rank });
    return checksum;
  }

  private async runStep(request: Parameters<WorkerHandlers['RunStep']>[0]['request'], deadlineMs = Number.POSITIVE_INFINITY) {
    const shard = this.shard;
    if (!shard || !this.executor) throw new FailedPreconditionError(`RunStep: worker ${this.id} has no shard loaded; call LoadShard first`);
    if (request.runId !== shard.runId) {
      throw new FailedPreconditionError(`RunStep: run ${request.runId} is not the loaded run ${shard.runId}`);
    }
    if (this.state === 'running') throw new FailedPreconditionError(`RunStep: step ${this.currentStep} is still running`);
    // A wait for peers never outlives the caller's deadline: the step fails with the op and the
    // missing ranks named before the scheduler gives up on this worker.
    const peerTimeoutMs = Math.max(1, Math.min(this.options.peerTimeoutMs ?? 30_000, deadlineMs - 50));
    const { batch, microBatches, schedule, settings } = decodeStep(request, shard, peerTimeoutMs, this.options.backend.maxMicroBatches ?? 1);
    const scheduleKey = `${schedule.kind}/${schedule.chunks}/${schedule.layers}/${schedule.microBatches}`;
    let ops = this.schedules.get(scheduleKey);
    if (!ops) this.schedules.set(scheduleKey, (ops = buildSchedule(schedule)));
    this.state = 'running';
    this.currentStep = batch.step;
    const shaped = this.transport instanceof ShapedTransport ? this.transport : undefined;
    shaped?.resetLinkStats();
    try {
      const outcome = await this.executor.run(ops, microBatches, settings);
      const link = shaped?.hostBound();
      this.options.onStep?.({ stepMs: outcome.stepMs, bytesSent: outcome.bytesSent, timeline: outcome.timeline });
      return {
        step: batch.step,
        lossSum: outcome.lossSum,
        auxLoss: outcome.auxLoss,
        expertCounts: [...outcome.counts],
        paramChecksum: outcome.checksum,
        timeline: request.options?.recordTimeline ? outcome.timeline : [],
        bytesSent: outcome.bytesSent,
        intraNodeBytes: outcome.linkBytes.intra,
        interNodeBytes: outcome.linkBytes.inter,
        physicalCounts: outcome.physicalCounts ? [...outcome.physicalCounts] : [],
        replicaChecksums: outcome.replicaChecksums ?? [],
        stepMs: outcome.stepMs,
        // maxRSS is in KiB; the peak of this process so far (bounded-memory checks compare it across routings).
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        // whether the host transport, not the modeled link, bound this step (bench rows say it)
        ...(link ? { link: { frames: link.frames, bytes: link.bytes, modeledMs: link.modeledMs, hostMs: link.hostMs, lateMs: link.lateMs, hostBound: link.bound } } : {}),
        dataPlane: this.dataPlane?.planesUsed() ?? 'grpc',
      };
    } catch (error) {
      const op = error instanceof StepOpError ? error.op.kind : undefined;
      this.log(`worker ${this.id}: step ${batch.step} failed: ${(error as Error).message}`, { level: 'error', step: batch.step, op, err: error });
      throw error;
    } finally {
      this.state = 'loaded';
    }
  }

  private async fetchParams(runId: string, includeOptimizerState = false) {
    if (!this.shard) throw new FailedPreconditionError(`FetchParams: worker ${this.id} has no shard loaded`);
    if (runId && runId !== this.shard.runId) throw new FailedPreconditionError(`FetchParams: run ${runId} is not the loaded run ${this.shard.runId}`);
    const snapshot = await this.options.backend.snapshot();
    const state = includeOptimizerState && this.options.backend.optimizerState ? await this.options.backend.optimizerState() : undefined;
    return {
      optimizerState: state
        ? {
            step: state.t,
            m: [...state.m].map(([name, t]) => namedTensorMsg(name, t)),
            v: [...state.v].map(([name, t]) => namedTensorMsg(name, t)),
          }
        : null,
      denseParams: snapshot.dense.map((p) => namedTensorMsg(p.name, p.tensor)),
      experts: snapshot.experts.flatMap((layer, l) =>
        [...layer.entries()].map(([expert, params]) => ({
          layer: l,
          expert,
          params: params.map((p) => namedTensorMsg(p.name, p.tensor)),
        })),
      ),
    };
  }

  /** Registering again failed for good: `onRefused` (default: log it and exit 1). */
  private onRefused(error: Error): void {
    this.log(error.message, { level: 'error', err: error });
    if (this.options.onRefused) this.options.onRefused(error);
    else void this.close().finally(() => process.exit(1));
  }

  /** Says goodbye to the scheduler (at most `timeoutMs`); never throws. */
  private deregister(reason: string, timeoutMs = 1_000): Promise<void> {
    const scheduler = this.scheduler;
    if (!scheduler) return Promise.resolve();
    return new Promise<void>((resolve) =>
      scheduler.Deregister({ workerId: this.id, reason }, { deadline: deadline(timeoutMs) }, (error) => {
        if (error && error.code !== grpc.status.UNIMPLEMENTED) this.log(`worker ${this.id}: could not deregister: ${error.message}`, { level: 'warn' });
        resolve();
      }),
    );
  }

  /** Stops serving; tells the scheduler first (`reason`: why, e.g. "SIGTERM"), so a run it was in fails now, not after the heartbeat timeout. */
  async close(reason = 'stopping'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.deregister(reason);
    await this.transport?.close().catch(() => {});
    await this.socketServer?.close().catch(() => {});
    await this.options.backend.close().catch(() => {});
    this.scheduler?.close();
    // tryShutdown waits for every client to hang up; a caller that keeps its channel open (the
    // scheduler, a peer) would keep the process alive after Shutdown, so force it after a grace.
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
