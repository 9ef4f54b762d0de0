/**
 * The conformance kit: drives one worker through the contract of proto/moe/v1/moe.proto and
 * docs/custom-workers.md, and says pass, fail or skip for each check, with the reason.
 *
 * The kit is the scheduler (its own Scheduler service, which the worker registers with) and
 * brings the worker's peers: a built-in worker process (the "reference peer") for the runs that
 * train, and a silent peer for the deadline. Runs have two ranks; the numbers of every step are
 * checked against the single-process reference trainer on the same batch.
 */
import { readableLine } from '@moe/log';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { tensorFromMsg, type FrameOut, type LoadShardRequest, type PeerMessage, type RunStepResponseOut } from '@moe/comm';
import { initParams, type ModelConfig, type Tensor } from '@moe/model';
import { splitSequences } from '@moe/placement';
import { compareParams, expertParamName, namedParams } from '../run/parity';
import { SchedulerService, type RegisteredWorker } from '../control/rendezvous';
import { NAIVE, OVERLAPPED, resolveStepSettings, stepOptionsToWire, type StepSettingsInput } from '@moe/schedule';
import { loadShardRequests, runStepRequests } from '../run/step-driver';
import { WorkerHandle } from '../control/worker-client';
import { WorkerProcess } from '../control/worker-process';
import { denseChecksum, KIT_MODEL, KIT_MODEL_AUX, KIT_TRAIN, ReferenceStepper } from './fixture';
import { FrameProbe, RawWorker, SilentPeer } from './probes';
import { commandFor, TargetCommand } from './target';

export const CHECKS = [
  ['register', 'registers with the scheduler (worker_id, address, backend)'],
  ['heartbeat', 'heartbeats at the interval Register answered'],
  ['health', 'answers Health with its worker_id before any run'],
  ['load-shard-invalid', 'refuses impossible LoadShards with INVALID_ARGUMENT'],
  ['load-shard', 'takes a shard; param_checksum is the FNV-1a 64 of its dense parameters'],
  ['run-step', 'trains steps with known inputs (naive; overlapped, 2 chunks) to the reference numbers'],
  ['fetch-params', 'FetchParams returns its dense parameters and its experts, equal to the reference'],
  ['codecs', 'exchanges FP8_E4M3 dispatch and BF16 combine frames'],
  ['malformed-frame', 'refuses malformed frames with PeerAck.error, echoing the key, and keeps the stream'],
  ['zero-token-frames', 'sends and takes empty frames (a rank holding no experts; one holding all)'],
  ['deadline', 'a peer that never sends: RunStep fails before its deadline, naming the rank and the step'],
  ['after-failure', 'trains a new run after a failed step'],
] as const;

export type CheckId = (typeof CHECKS)[number][0];
export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  /** Why it passed (what was seen), failed (what was wrong) or was skipped. */
  reason: string;
  ms: number;
}

export interface ConformanceReport {
  /** host:port of the worker under test ("" when it never showed up). */
  address: string;
  workerId: string;
  backend: string;
  /** Numbers were not compared: the worker models a device. */
  modeled: boolean;
  checks: CheckResult[];
  /** No check failed. */
  ok: boolean;
}

export interface ConformanceOptions {
  /** host:port of a worker that is already running; it should register with the kit's scheduler. */
  worker?: string;
  /** A shell command that starts the worker; `{scheduler}` becomes the kit's scheduler address (else `--scheduler <address>` is appended). */
  command?: string;
  /** Directory the command runs in. Default: the current directory. */
  cwd?: string;
  /** Interface of the kit's scheduler and peers. Default 127.0.0.1. */
  host?: string;
  /** Port of the kit's scheduler (for a worker started by hand). Default 0: any free port. */
  schedulerPort?: number;
  /** Backend of the reference peer. Default: the worker's own when it registers as "cpu" or "sim", else "cpu". */
  peerBackend?: string;
  /** LoadShard.backend_options_json of every run (both ranks), e.g. the sim profile. */
  backendOptions?: Record<string, unknown>;
  /** The worker models a device and does not learn (like `sim`): check the protocol, not the numbers. Default: auto (backend "sim" or a device profile). */
  modeled?: boolean;
  /** The reference peer's --peer-timeout. Default 3000 ms. */
  peerTimeoutMs?: number;
  /** RunStep deadline of the deadline check. Default 5000 ms. */
  deadlineMs?: number;
  /** Deadline of every other RPC. Default 20 000 ms. */
  rpcTimeoutMs?: number;
  /** How long to wait for the worker's Register. Default 30 000 ms. */
  registerTimeoutMs?: number;
  /** Do not wait for a Register (a --worker that registers elsewhere): register and heartbeat are skipped. */
  skipRegister?: boolean;
  /** Lines about what the kit does, and the worker's output. */
  log?: (line: string) => void;
  /** Called as each check ends. */
  onCheck?: (result: CheckResult) => void;
}

/** A check found the worker wrong: the message is the reason printed. */
export class CheckFailure extends Error {
  override readonly name = 'CheckFailure';
}

const LOSS_TOLERANCE = 1e-5;
const PARAM_TOLERANCE = 1e-4;
/** Lossy codecs (fp8 dispatch, bf16 combine) against the float32 reference. */
const CODEC_LOSS_TOLERANCE = 5e-2;
const PEER_ID = `conformance-peer-${randomUUID().slice(0, 6)}`;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
const statusName = (code: number) => grpc.status[code] ?? String(code);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const relative = (a: number, e: number) => (e === 0 ? Math.abs(a - e) : Math.abs(a - e) / Math.abs(e));

/** One run of the kit: its ranks and what LoadShard gave each. */
interface Run {
  runId: string;
  model: ModelConfig;
  owner: number[];
  /** Rank of the worker under test; the other rank is the reference peer (or the silent one). */
  rank: number;
  requests: LoadShardRequest[];
  target: WorkerHandle;
  peer?: WorkerHandle;
  reference: ReferenceStepper;
}

/**
 * Runs every check against one worker and returns the report. Everything the kit started (the
 * worker's command, the reference peer, its servers) is stopped before it returns.
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  if (!options.worker === !options.command) throw new RangeError('conformance: give exactly one of worker (host:port) and command');
  const kit = new Kit(options);
  try {
    return await kit.run();
  } finally {
    await kit.stop();
  }
}

class Kit {
  private readonly log: (line: string) => void;
  private readonly scheduler: SchedulerService;
  private readonly silent = new SilentPeer();
  private target?: TargetCommand;
  private peerProcess?: WorkerProcess;
  private peerAddress = '';
  private peerError = '';
  private registered?: RegisteredWorker;
  private address: string;
  private modeled = false;
  private readonly results: CheckResult[] = [];
  private runs = 0;
  private readonly handles: { close(): void }[] = [];
  private readonly killAll = () => {
    this.target?.kill();
    this.peerProcess?.kill();
  };

  constructor(private readonly o: ConformanceOptions) {
    this.log = o.log ?? (() => {});
    this.address = o.worker ?? '';
    this.scheduler = new SchedulerService({ host: o.host, port: o.schedulerPort ?? 0, heartbeatIntervalMs: 250, heartbeatTimeoutMs: 60_000 });
    process.on('exit', this.killAll);
  }

  private get rpcMs() {
    return this.o.rpcTimeoutMs ?? 20_000;
  }
  private get peerTimeoutMs() {
    return this.o.peerTimeoutMs ?? 3_000;
  }

  async run(): Promise<ConformanceReport> {
    const schedulerAddress = await this.scheduler.start();
    this.log(`conformance: scheduler listening on ${schedulerAddress}`);
    if (this.o.command) {
      const command = commandFor(this.o.command, schedulerAddress);
      this.log(`conformance: starting the worker: ${command}`);
      this.target = new TargetCommand(command, this.o.cwd ?? process.cwd(), (line) => this.log(`[worker] ${readableLine(line)}`));
    } else if (!this.o.skipRegister) {
      this.log(`conformance: waiting for the worker at ${this.o.worker} to register (start it with --scheduler ${schedulerAddress})`);
    }
    if (this.o.peerBackend) this.startPeer(this.o.peerBackend, schedulerAddress);

    await this.check('register', () => this.checkRegister());
    if (!this.address) {
      for (const [id] of CHECKS.slice(1)) this.record(id, 'skip', 'no worker to test: it never registered', 0);
      return this.report();
    }
    if (!this.peerProcess) this.startPeer(this.registered && ['cpu', 'sim'].includes(this.registered.backend) ? this.registered.backend : 'cpu', schedulerAddress);
    this.modeled = this.o.modeled ?? (this.registered?.backend === 'sim' || !!this.registered?.deviceProfile);
    if (this.modeled) this.log('conformance: the worker models a device: its numbers are not compared');

    await this.check('heartbeat', () => this.checkHeartbeat());
    await this.check('health', () => this.checkHealth());
    if (!this.passed('health')) {
      for (const [id] of CHECKS.slice(3)) this.record(id, 'skip', `needs health: the worker at ${this.address} did not answer it properly`, 0);
      return this.report();
    }
    await this.check('load-shard-invalid', () => this.checkLoadShardInvalid());
    const peerReady = await this.waitForPeer();
    let runA: Run | undefined;
    await this.check('load-shard', async () => {
      if (!peerReady) return { skip: `the kit's reference peer did not start: ${this.peerError}` };
      runA = this.plan(KIT_MODEL, [0, 0, 1, 1], 0, this.peerAddress);
      return this.checkLoadShard(runA);
    });
    const loaded = this.passed('load-shard');
    await this.check('run-step', () => (loaded && runA ? this.checkRunStep(runA) : { skip: 'needs load-shard, which did not pass' }));
    const stepped = this.passed('run-step');
    await this.check('fetch-params', () => (stepped && runA ? this.checkFetchParams(runA) : { skip: 'needs run-step, which did not pass' }));
    await this.check('codecs', () => (stepped && runA ? this.checkCodecs(runA) : { skip: 'needs run-step, which did not pass' }));
    await this.check('malformed-frame', () => (loaded && runA ? this.checkMalformed(runA) : { skip: 'needs load-shard, which did not pass' }));
    await this.check('zero-token-frames', () => (peerReady ? this.checkZeroTokens() : { skip: `the kit's reference peer did not start: ${this.peerError}` }));
    await this.check('deadline', () => this.checkDeadline());
    await this.check('after-failure', () => (peerReady ? this.checkAfterFailure() : { skip: `the kit's reference peer did not start: ${this.peerError}` }));
    return this.report();
  }

  private report(): ConformanceReport {
    return {
      address: this.address,
      workerId: this.registered?.workerId ?? '',
      backend: this.registered?.backend ?? '',
      modeled: this.modeled,
      checks: [...this.results],
      ok: this.results.every((r) => r.status !== 'fail'),
    };
  }

  async stop(): Promise<void> {
    await Promise.all([this.target?.stop(), this.peerProcess?.stop(3_000)]);
    this.handles.forEach((h) => h.close());
    this.silent.close();
    await this.scheduler.close();
    process.off('exit', this.killAll);
  }

  // ---------------------------------------------------------------- plumbing

  private passed(id: CheckId): boolean {
    return this.results.find((r) => r.id === id)?.status === 'pass';
  }

  private record(id: CheckId, status: CheckStatus, reason: string, ms: number): void {
    const title = CHECKS.find(([c]) => c === id)![1];
    const result: CheckResult = { id, title, status, reason, ms };
    this.results.push(result);
    this.o.onCheck?.(result);
  }

  private async check(id: CheckId, body: () => Promise<string | { skip: string }> | string | { skip: string }): Promise<void> {
    const started = performance.now();
    try {
      const outcome = await body();
      const ms = performance.now() - started;
      if (typeof outcome === 'string') this.record(id, 'pass', outcome, ms);
      else this.record(id, 'skip', outcome.skip, ms);
    } catch (error) {
      this.record(id, 'fail', error instanceof CheckFailure ? error.message : `${(error as Error)?.name ?? 'Error'}: ${errorText(error)}`, performance.now() - started);
    }
  }

  private startPeer(backend: string, schedulerAddress: string): void {
    this.log(`conformance: starting the reference peer (built-in worker, backend ${backend})`);
    this.peerProcess = new WorkerProcess({
      workerId: PEER_ID,
      scheduler: schedulerAddress,
      host: this.o.host,
      backend,
      extraArgs: ['--peer-timeout', String(this.peerTimeoutMs)],
      onLine: (line) => this.log(`[peer] ${readableLine(line)}`),
    });
  }

  private async waitForPeer(): Promise<boolean> {
    const until = Date.now() + (this.o.registerTimeoutMs ?? 30_000);
    while (Date.now() < until) {
      const peer = this.scheduler.liveWorkers().find((w) => w.workerId === PEER_ID);
      if (peer) {
        this.peerAddress = peer.address;
        return true;
      }
      if (this.peerProcess && !this.peerProcess.running) break;
      await sleep(50);
    }
    this.peerError = this.peerProcess?.running === false ? this.peerProcess.exitError('before it registered').message : 'it did not register in time';
    return false;
  }

  /** A two-rank run of `model`: the worker under test at `rank`, the other rank at `otherAddress`. */
  private plan(model: ModelConfig, owner: number[], rank: number, otherAddress: string): Run {
    const runId = `conformance-${++this.runs}-${randomUUID().slice(0, 6)}`;
    const peers = rank === 0 ? [this.address, otherAddress] : [otherAddress, this.address];
    const requests = loadShardRequests(
      { runId, model, optimizer: KIT_TRAIN.optimizer, seqLen: KIT_TRAIN.seqLen, owner, peers, backendOptions: this.o.backendOptions },
      initParams(model),
    );
    const id = this.registered?.workerId ?? 'under test';
    const target = new WorkerHandle(rank, id, this.address);
    const peer = otherAddress === this.peerAddress ? new WorkerHandle(1 - rank, PEER_ID, this.peerAddress) : undefined;
    this.handles.push(target, ...(peer ? [peer] : []));
    return { runId, model, owner, rank, requests, target, peer, reference: new ReferenceStepper(model) };
  }

  /** Waits until `handle` is not running a step (a failed step may keep a worker busy until its peer timeout). */
  private async settle(handle: WorkerHandle, what: string, maxMs: number): Promise<void> {
    const until = Date.now() + maxMs;
    for (;;) {
      const health = await handle.health(this.rpcMs);
      if (health.state !== 'running') return;
      if (Date.now() > until) throw new CheckFailure(`${what} is still running a step (run ${health.runId}) ${maxMs} ms later`);
      await sleep(100);
    }
  }

  /** LoadShard on the worker under test and on the reference peer. Returns the worker's checksum. */
  private async load(run: Run): Promise<string> {
    const settleMs = this.peerTimeoutMs + 3_000;
    await this.settle(run.target, 'the worker under test', settleMs);
    if (run.peer) await this.settle(run.peer, "the kit's reference peer", settleMs);
    const [target, peer] = await Promise.allSettled([
      run.target.loadShard(run.requests[run.rank]!, this.rpcMs),
      run.peer?.loadShard(run.requests[1 - run.rank]!, this.rpcMs),
    ]);
    if (target.status === 'rejected') throw new CheckFailure(`LoadShard failed: ${errorText(target.reason)}`);
    if (peer.status === 'rejected') throw new CheckFailure(`LoadShard on the kit's reference peer failed: ${errorText(peer.reason)}`);
    return target.value.paramChecksum;
  }

  /**
   * One step of `run` on both ranks; checks the replies' shapes and that the replicas agree, and
   * (unless modeled) the loss against the reference. Returns the two replies, index = rank.
   */
  private async step(run: Run, step: number, settings: StepSettingsInput, lossTolerance = LOSS_TOLERANCE): Promise<{ replies: RunStepResponseOut[]; loss: number; expected: number }> {
    const batch = run.reference.batch(step);
    const options = stepOptionsToWire(resolveStepSettings(settings));
    const requests = runStepRequests(run.runId, step, batch, splitSequences(KIT_TRAIN.batchSequences, 2), options);
    const [target, peer] = await Promise.allSettled([
      run.target.runStep(requests[run.rank]!, this.rpcMs),
      run.peer!.runStep(requests[1 - run.rank]!, this.rpcMs),
    ]);
    const expected = run.reference.step(step);
    const failures = [
      ...(target.status === 'rejected' ? [`the worker under test (rank ${run.rank}): ${errorText(target.reason)}`] : []),
      ...(peer.status === 'rejected' ? [`the kit's reference peer (rank ${1 - run.rank}): ${errorText(peer.reason)}`] : []),
    ];
    if (failures.length > 0) {
      // the reference peer timed out on a frame of the worker under test: say which rule that breaks
      const missed = peer.status === 'rejected' && new RegExp(`waiting for [^;]* from rank ${run.rank}\\b`).test(errorText(peer.reason));
      const hint = missed ? ` (the worker under test never sent the reference peer that frame: every rank sends exactly one frame per key to every other rank, an empty one when it has no rows)` : '';
      throw new CheckFailure(`step ${step} failed on ${failures.join('; and on ')}${hint}`);
    }
    const replies: RunStepResponseOut[] = [];
    replies[run.rank] = (target as PromiseFulfilledResult<RunStepResponseOut>).value;
    replies[1 - run.rank] = (peer as PromiseFulfilledResult<RunStepResponseOut>).value;
    const mine = replies[run.rank]!;
    const { layers, routedExperts } = run.model;
    if (mine.step !== step) throw new CheckFailure(`RunStep of step ${step} answered step ${mine.step}`);
    if (mine.expertCounts.length !== layers * routedExperts) {
      throw new CheckFailure(`RunStep: expert_counts has ${mine.expertCounts.length} entries, expected layers * routed_experts = ${layers * routedExperts}`);
    }
    const tokens = KIT_TRAIN.batchSequences * KIT_TRAIN.seqLen;
    const counted = replies.reduce((n, r) => n + r.expertCounts.reduce((a, b) => a + b, 0), 0);
    if (!this.modeled && counted !== tokens * run.model.topK * layers) {
      throw new CheckFailure(`step ${step}: expert_counts of both ranks add up to ${counted}, expected tokens * top_k * layers = ${tokens * run.model.topK * layers}`);
    }
    if (mine.paramChecksum !== replies[1 - run.rank]!.paramChecksum) {
      throw new CheckFailure(
        `step ${step}: param_checksum ${mine.paramChecksum || '(empty)'} differs from the reference peer's ${replies[1 - run.rank]!.paramChecksum}: ` +
          'the replicated dense parameters diverged (the all-reduce or the update is not bitwise the same on every rank)',
      );
    }
    const loss = replies.reduce((n, r) => n + r.lossSum, 0);
    if (!this.modeled) {
      if (!(relative(loss, expected.loss) <= lossTolerance)) {
        throw new CheckFailure(
          `step ${step}: loss ${loss} (rank ${run.rank} loss_sum ${mine.lossSum} + rank ${1 - run.rank} ${replies[1 - run.rank]!.lossSum}) ` +
            `differs from the reference ${expected.loss} by ${relative(loss, expected.loss).toExponential(2)} relative (tolerance ${lossTolerance})`,
        );
      }
      const aux = replies.reduce((n, r) => n + r.auxLoss, 0);
      if (!(Math.abs(aux - expected.auxLoss) <= Math.max(1e-9, lossTolerance * Math.abs(expected.auxLoss)))) {
        throw new CheckFailure(`step ${step}: aux loss ${aux} differs from the reference ${expected.auxLoss}`);
      }
    }
    return { replies, loss, expected: expected.loss };
  }

  // ---------------------------------------------------------------- the checks

  private async checkRegister(): Promise<string | { skip: string }> {
    if (this.o.skipRegister) return { skip: 'asked not to wait for a Register' };
    const timeoutMs = this.o.registerTimeoutMs ?? 30_000;
    const wanted = (w: RegisteredWorker) => w.workerId !== PEER_ID && (!this.o.worker || w.address === this.o.worker);
    const worker = await new Promise<RegisteredWorker | undefined>((resolve) => {
      const done = (w: RegisteredWorker | undefined) => {
        off();
        clearTimeout(timer);
        resolve(w);
      };
      const off = this.scheduler.onRegister((w) => wanted(w) && done(w));
      const timer = setTimeout(() => done(undefined), timeoutMs);
      void this.target?.exited.then(() => done(undefined));
      const already = this.scheduler.liveWorkers().find(wanted);
      if (already) done(already);
    });
    if (!worker) {
      if (this.target?.exit) throw new CheckFailure(`the worker never registered: ${this.target.describeExit()}`);
      const others = this.scheduler.liveWorkers().filter((w) => w.workerId !== PEER_ID);
      throw new CheckFailure(
        `no Register within ${timeoutMs} ms` +
          (this.o.worker ? ` from a worker at ${this.o.worker}` : '') +
          (others.length ? ` (registered instead: ${others.map((w) => `${w.workerId} at ${w.address}`).join(', ')})` : '') +
          `; a worker calls Scheduler.Register at the address given with --scheduler (${this.scheduler.address})`,
      );
    }
    this.registered = worker;
    this.address = worker.address;
    const problems: string[] = [];
    if (!/^[^:\s]+:\d+$/.test(worker.address) && !/^\[.*\]:\d+$/.test(worker.address)) problems.push(`address "${worker.address}" is not host:port`);
    if (!worker.backend) problems.push('backend is empty (name the backend, e.g. "cpu" or your own)');
    if (problems.length) throw new CheckFailure(`Register of ${worker.workerId}: ${problems.join('; ')}`);
    return `${worker.workerId} at ${worker.address}, backend ${worker.backend}${worker.deviceProfile ? ` (device ${worker.deviceProfile})` : ''}, pid ${worker.pid || '-'}`;
  }

  private async checkHeartbeat(): Promise<string | { skip: string }> {
    const w = this.registered;
    if (!w) return { skip: 'the worker did not register with the kit' };
    const interval = this.scheduler.heartbeatIntervalMs;
    const waitMs = Math.max(2_000, 4 * interval);
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      if (w.lastSeen > w.registeredAt) return `heard from it ${w.lastSeen - w.registeredAt} ms after Register (interval ${interval} ms)`;
      await sleep(25);
    }
    throw new CheckFailure(`no Heartbeat within ${waitMs} ms of Register; Register answered heartbeat_interval_ms=${interval}`);
  }

  private async checkHealth(): Promise<string> {
    const handle = new WorkerHandle(0, this.registered?.workerId ?? '?', this.address);
    try {
      const h = await handle.health(this.rpcMs);
      if (this.registered && h.workerId !== this.registered.workerId) {
        throw new CheckFailure(`Health says worker_id "${h.workerId}", Register said "${this.registered.workerId}"`);
      }
      if (!['idle', 'loaded'].includes(h.state)) throw new CheckFailure(`Health state is "${h.state}"; before a run it must be "idle" (or "loaded" from an earlier run)`);
      return `worker_id ${h.workerId}, state ${h.state}`;
    } finally {
      handle.close();
    }
  }

  private async checkLoadShardInvalid(): Promise<string> {
    const run = this.plan(KIT_MODEL, [0, 0, 1, 1], 0, '127.0.0.1:1');
    const base = run.requests[0]!;
    const cases: [string, LoadShardRequest][] = [
      ['rank 2 of world_size 2', { ...base, rank: 2 }],
      ['top_k 5 above routed_experts 4', { ...base, model: { ...base.model, topK: 5 } }],
      ['an expert it does not own (expert 2 goes to rank 1)', { ...base, experts: [...(base.experts ?? []), { ...run.requests[1]!.experts![0]! }] }],
    ];
    const seen: string[] = [];
    const raw = new RawWorker(this.address);
    try {
      for (const [what, request] of cases) {
        const outcome = await raw.loadShard(request, this.rpcMs);
        if (outcome.ok) throw new CheckFailure(`LoadShard with ${what} was accepted; expected INVALID_ARGUMENT naming what is wrong`);
        if (outcome.code !== grpc.status.INVALID_ARGUMENT) {
          throw new CheckFailure(`LoadShard with ${what} answered ${statusName(outcome.code)} ("${outcome.details}"); expected INVALID_ARGUMENT`);
        }
        if (!outcome.details) throw new CheckFailure(`LoadShard with ${what} answered INVALID_ARGUMENT without details; say what is wrong`);
        seen.push(`${what}: "${outcome.details}"`);
      }
    } finally {
      raw.close();
    }
    return `refused ${seen.length}: ${seen.join(' | ')}`;
  }

  private async checkLoadShard(run: Run): Promise<string> {
    const checksum = await this.load(run);
    const expected = denseChecksum(initParams(run.model));
    if (checksum !== expected) {
      throw new CheckFailure(`param_checksum ${checksum || '(empty)'}, expected ${expected} (FNV-1a 64 of the float32 bytes of the dense parameters in LoadShard order)`);
    }
    const h = await run.target.health(this.rpcMs);
    if (h.state !== 'loaded' || h.runId !== run.runId || h.rank !== run.rank) {
      throw new CheckFailure(`after LoadShard, Health says state "${h.state}", run "${h.runId}", rank ${h.rank}; expected "loaded", "${run.runId}", ${run.rank}`);
    }
    return `param_checksum ${checksum}; Health: loaded, rank ${run.rank}`;
  }

  private async checkRunStep(run: Run): Promise<string> {
    const naive = await this.step(run, 0, { schedule: NAIVE });
    const overlapped = await this.step(run, 1, { schedule: OVERLAPPED, chunks: 2 });
    const sent = Number(naive.replies[run.rank]!.bytesSent);
    if (this.modeled) return `2 steps; replicas agree (checksum ${overlapped.replies[run.rank]!.paramChecksum}); ${sent} bytes sent in step 0`;
    const diff = (s: { loss: number; expected: number }) => relative(s.loss, s.expected).toExponential(1);
    return `naive step: loss ${naive.loss.toFixed(6)} (reference ${naive.expected.toFixed(6)}, rel ${diff(naive)}); overlapped: ${overlapped.loss.toFixed(6)} (rel ${diff(overlapped)}); replicas agree`;
  }

  private async checkFetchParams(run: Run): Promise<string> {
    const reply = await run.target.fetchParams(run.runId, this.rpcMs);
    const reference = namedParams(run.reference.params);
    const actual = new Map<string, Tensor>();
    for (const p of reply.denseParams) actual.set(p.name, tensorFromMsg(p.tensor, `FetchParams.dense_params ${p.name}`));
    for (const e of reply.experts) {
      if (run.owner[e.expert] !== run.rank) throw new CheckFailure(`FetchParams returned expert ${e.expert} of layer ${e.layer}, which rank ${run.owner[e.expert]} owns`);
      for (const p of e.params) actual.set(expertParamName(e.layer, e.expert, p.name), tensorFromMsg(p.tensor, `FetchParams expert ${e.expert} ${p.name}`));
    }
    // the reference restricted to what this rank holds: every dense parameter and its own experts
    const mine = new Map([...reference].filter(([name]) => {
      const m = /^layers\.\d+\.experts\.(\d+)\./.exec(name);
      return !m || run.owner[Number(m[1])] === run.rank;
    }));
    let worst;
    try {
      worst = compareParams(actual, mine);
    } catch (error) {
      throw new CheckFailure(`FetchParams: ${errorText(error)}`);
    }
    if (this.modeled) return `${mine.size} tensors with the right names and shapes`;
    if (!(worst.maxAbsolute <= PARAM_TOLERANCE)) {
      throw new CheckFailure(
        `after 2 steps ${worst.name}[${worst.index}] is ${worst.actual}, the reference has ${worst.expected} (difference ${worst.maxAbsolute.toExponential(2)}, tolerance ${PARAM_TOLERANCE})`,
      );
    }
    return `${mine.size} tensors; max difference from the reference ${worst.maxAbsolute.toExponential(2)} in ${worst.name}`;
  }

  private async checkCodecs(run: Run): Promise<string> {
    const s = await this.step(run, 2, { schedule: OVERLAPPED, chunks: 2, dispatchCodec: 'fp8', combineCodec: 'bf16' }, CODEC_LOSS_TOLERANCE);
    return this.modeled ? 'the step ran; replicas agree' : `loss ${s.loss.toFixed(6)} vs float32 reference ${s.expected.toFixed(6)} (tolerance ${CODEC_LOSS_TOLERANCE} relative); replicas agree`;
  }

  private async checkMalformed(run: Run): Promise<string> {
    const H = run.model.hiddenSize;
    const source = 1 - run.rank;
    const probe = new FrameProbe(this.address, { runId: run.runId, source, connection: 99 });
    const frame = (layer: number, chunk: number, rest: Partial<FrameOut> & { data?: Buffer; shape?: number[] }): PeerMessage => ({
      frame: {
        step: 1000,
        layer,
        chunk,
        phase: rest.phase ?? 'DISPATCH',
        source: rest.source ?? source,
        payload: { shape: rest.shape ?? [0, H], dtype: 'F32', data: rest.data ?? Buffer.alloc(0) },
        expertIds: (rest.expertIds as Buffer | undefined) ?? Buffer.alloc(0),
        part: 0,
        parts: 1,
      },
    });
    const timeoutMs = 5_000;
    const ask = async (what: string, message: PeerMessage) => {
      const answer = await probe.send(message, timeoutMs);
      if ('timeout' in answer) throw new CheckFailure(`${what}: no PeerAck within ${timeoutMs} ms (every frame is answered by one PeerAck)`);
      if ('ended' in answer) throw new CheckFailure(`${what}: ${answer.ended}; a refused frame is answered with PeerAck.error and the stream goes on`);
      const f = message.frame!;
      const a = answer.ack;
      if (a.step !== f.step || a.layer !== f.layer || a.chunk !== f.chunk || a.phase !== f.phase || a.part !== f.part) {
        throw new CheckFailure(`${what}: the PeerAck says step ${a.step} layer ${a.layer} chunk ${a.chunk} ${a.phase} part ${a.part}; an ack echoes its frame's key and part`);
      }
      return a.error;
    };
    try {
      const control = await ask('a well-formed empty frame (step 1000 layer 0 chunk 0 DISPATCH, F32 [0, H])', frame(0, 0, {}));
      if (control) throw new CheckFailure(`refused a well-formed empty frame for a later step (it must be kept: peers run ahead): "${control}"`);
      const cases: [string, PeerMessage][] = [
        [`F32 [2, ${H}] carrying 12 bytes of data (needs ${8 * H})`, frame(1, 0, { shape: [2, H], data: Buffer.alloc(12) })],
        [`F32 [1, ${H}] with 2 bytes of expert_ids (needs 4 or none)`, frame(1, 1, { shape: [1, H], data: Buffer.alloc(4 * H), expertIds: Buffer.alloc(2) })],
        ['phase PHASE_UNSPECIFIED', frame(0, 1, { phase: 'PHASE_UNSPECIFIED' })],
        [`source ${1 - source} on a stream whose hello said source ${source}`, frame(0, 2, { source: 1 - source })],
      ];
      const refusals: string[] = [];
      for (const [what, message] of cases) {
        const error = await ask(`a frame with ${what}`, message);
        if (!error) throw new CheckFailure(`accepted a frame with ${what}; it must be refused with PeerAck.error saying why`);
        refusals.push(`${what}: "${error}"`);
      }
      return `refused ${refusals.length} on one stream, each with a reason: ${refusals.join(' | ')}`;
    } finally {
      probe.close();
    }
  }

  private async checkZeroTokens(): Promise<string> {
    // a rank holding no expert: it receives empty DISPATCH frames and sends empty COMBINE frames
    const none = this.plan(KIT_MODEL, [0, 0, 0, 0], 1, this.peerAddress);
    await this.load(none);
    await this.step(none, 0, { schedule: OVERLAPPED, chunks: 2 });
    // a rank holding every expert: the other way round, on the other branches of the math
    const all = this.plan(KIT_MODEL_AUX, [0, 0, 0, 0], 0, this.peerAddress);
    await this.load(all);
    await this.step(all, 0, { schedule: NAIVE });
    return 'a run where it holds no expert (rank 1, overlapped) and one where it holds all 4 (rank 0, sigmoid + aux loss) both trained';
  }

  private async checkDeadline(): Promise<string> {
    const silentAddress = this.silent.address || (await this.silent.start(this.o.host));
    const run = this.plan(KIT_MODEL, [0, 0, 1, 1], 0, silentAddress);
    await this.load(run);
    const deadlineMs = this.o.deadlineMs ?? 5_000;
    const batch = run.reference.batch(7);
    const request = runStepRequests(run.runId, 7, batch, splitSequences(KIT_TRAIN.batchSequences, 2), stepOptionsToWire(resolveStepSettings()))[0]!;
    const raw = new RawWorker(this.address);
    const started = performance.now();
    const outcome = await raw.runStep(request, deadlineMs).finally(() => raw.close());
    const ms = Math.round(performance.now() - started);
    if (outcome.ok) throw new CheckFailure('RunStep succeeded although rank 1 never sent a frame');
    if (outcome.code === grpc.status.DEADLINE_EXCEEDED) {
      throw new CheckFailure(
        `no answer within the RunStep deadline of ${deadlineMs} ms: a worker must stop waiting for a peer that does not send ` +
          '(at its peer timeout, and before the deadline of the call) and answer with an error',
      );
    }
    if (!/\brank 1\b/.test(outcome.details) || !/\bstep 7\b/.test(outcome.details)) {
      throw new CheckFailure(`answered ${statusName(outcome.code)} after ${ms} ms with "${outcome.details}", which does not name the rank that did not send (rank 1) and the step (7)`);
    }
    const answered = `answered ${statusName(outcome.code)} after ${ms} ms: "${outcome.details}"`;
    await this.settle(run.target, 'the worker under test', 3_000);
    const sent = this.silent.received.filter((f) => f.startsWith('step 7')).length;
    return `${answered}; then idle${sent ? `; it had sent ${sent} frame(s) to the silent rank` : ''}`;
  }

  private async checkAfterFailure(): Promise<string> {
    const run = this.plan(KIT_MODEL, [0, 1, 0, 1], 0, this.peerAddress);
    await this.load(run);
    const s = await this.step(run, 0, { schedule: NAIVE });
    return this.modeled ? 'a new run trained a step' : `a new run trained a step: loss ${s.loss.toFixed(6)} (reference ${s.expected.toFixed(6)})`;
  }
}

/** Check results as printed: "PASS  register            reason", one per line, then a summary line. */
export function formatConformance(report: ConformanceReport): string {
  const width = Math.max(...CHECKS.map(([id]) => id.length));
  const lines = report.checks.map((c) => formatCheck(c, width));
  const count = (s: CheckStatus) => report.checks.filter((c) => c.status === s).length;
  lines.push(
    `conformance of ${report.workerId || 'the worker'}${report.address ? ` at ${report.address}` : ''}` +
      `${report.backend ? ` (backend ${report.backend}${report.modeled ? ', modeled: numbers not compared' : ''})` : ''}: ` +
      `${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped: ${report.ok ? 'PASS' : 'FAIL'}`,
  );
  return lines.join('\n');
}

export function formatCheck(c: CheckResult, width = 18): string {
  return `${c.status.toUpperCase().padEnd(4)}  ${c.id.padEnd(width)}  ${c.reason}${c.status === 'skip' ? '' : ` (${Math.round(c.ms)} ms)`}`;
}
