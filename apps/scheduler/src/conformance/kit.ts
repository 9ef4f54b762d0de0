/**
 * The conformance kit's harness: its own scheduler (the worker registers with it), the worker's
 * peers (a built-in worker process, the "reference peer", and a silent peer for the deadline),
 * and the plumbing every check uses: plan a two-rank run, load it, run a step on both ranks.
 * The checks themselves are in checks/; each plans its own run, so none depends on another.
 */
import { randomUUID } from 'node:crypto';
import type { LoadShardRequest, OptimizerStateMsg, RunStepResponseOut } from '@moe/comm';
import { initParams, type ModelConfig, type ModelParams } from '@moe/model';
import { splitSequences } from '@moe/placement';
import { resolveStepSettings, stepOptionsToWire, type StepSettings, type StepSettingsInput } from '@moe/schedule';
import { SchedulerService, type RegisteredWorker } from '../control/rendezvous';
import { WorkerHandle } from '../control/worker-client';
import { WorkerProcess } from '../control/worker-process';
import { runMirror } from '../run/parity-mirror';
import { gatherStep, loadShardRequests, runStepRequests } from '../run/step-driver';
import { KIT_TRAIN, ReferenceStepper } from './fixture';
import type { ConformanceOptions } from './options';
import { SilentPeer } from './probes';
import { CheckFailure } from './report';
import { TargetCommand } from './target';

export const PEER_ID = `conformance-peer-${randomUUID().slice(0, 6)}`;
export const LOSS_TOLERANCE = 1e-5;
export const PARAM_TOLERANCE = 1e-4;
/** The kit's runs: two ranks, the batch split as the scheduler splits it. */
export const KIT_RANGES = splitSequences(KIT_TRAIN.batchSequences, 2);

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const relative = (a: number, e: number) => (e === 0 ? Math.abs(a - e) : Math.abs(a - e) / Math.abs(e));

/** One run of the kit: its ranks and what LoadShard gave each. */
export interface Run {
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

/** One step of a run, as both ranks answered it, and the reference's numbers for it. */
export interface StepOutcome {
  step: number;
  settings: StepSettings;
  replies: RunStepResponseOut[];
  /** Σ loss_sum over both ranks. */
  loss: number;
  auxLoss: number;
  /** The reference's loss and aux loss (rounding and summation order mirrored) and each rank's share before the step. */
  expected: { loss: number; auxLoss: number; shares: { loss: number; counts: Int32Array[] }[] };
}

export class Kit {
  readonly log: (line: string) => void;
  scheduler: SchedulerService;
  readonly silent = new SilentPeer();
  target?: TargetCommand;
  peerProcess?: WorkerProcess;
  peerAddress = '';
  peerError = '';
  registered?: RegisteredWorker;
  address: string;
  modeled = false;
  private runs = 0;
  private readonly handles: { close(): void }[] = [];
  private readonly killAll = () => {
    this.target?.kill();
    this.peerProcess?.kill();
  };

  constructor(readonly o: ConformanceOptions) {
    this.log = o.log ?? (() => {});
    this.address = o.worker ?? '';
    this.scheduler = this.newScheduler(o.schedulerPort ?? 0);
    process.on('exit', this.killAll);
  }

  newScheduler(port: number): SchedulerService {
    return new SchedulerService({ host: this.o.host, port, heartbeatIntervalMs: 250, heartbeatTimeoutMs: 60_000 });
  }

  get rpcMs() {
    return this.o.rpcTimeoutMs ?? 20_000;
  }
  get peerTimeoutMs() {
    return this.o.peerTimeoutMs ?? 3_000;
  }

  async stop(): Promise<void> {
    await Promise.all([this.target?.stop(), this.peerProcess?.stop(3_000)]);
    this.handles.forEach((h) => h.close());
    this.silent.close();
    await this.scheduler.close();
    process.off('exit', this.killAll);
  }

  startPeer(backend: string, schedulerAddress: string): void {
    this.log(`conformance: starting the reference peer (built-in worker, backend ${backend})`);
    this.peerProcess = new WorkerProcess({
      workerId: PEER_ID,
      scheduler: schedulerAddress,
      host: this.o.host,
      backend,
      extraArgs: ['--peer-timeout', String(this.peerTimeoutMs)],
      onLine: (line) => this.log(`[peer] ${line}`),
    });
  }

  async waitForPeer(): Promise<boolean> {
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

  /**
   * A two-rank run of `model`: the worker under test at `rank`, the other rank at `otherAddress`
   * (the reference peer unless given). `params` and `optimizerState` start it elsewhere than at init.
   */
  plan(model: ModelConfig, owner: number[], rank: number, otherAddress = this.peerAddress, start?: { params: ModelParams; optimizerState: OptimizerStateMsg[] }): Run {
    const runId = `conformance-${++this.runs}-${randomUUID().slice(0, 6)}`;
    const peers = rank === 0 ? [this.address, otherAddress] : [otherAddress, this.address];
    const requests = loadShardRequests(
      { runId, model, optimizer: KIT_TRAIN.optimizer, seqLen: KIT_TRAIN.seqLen, owner, peers, backendOptions: this.o.backendOptions },
      start?.params ?? initParams(model),
    ).map((r, i) => (start ? { ...r, optimizerState: start.optimizerState[i]! } : r));
    const target = new WorkerHandle(rank, this.registered?.workerId ?? 'under test', this.address);
    const peer = otherAddress === this.peerAddress ? new WorkerHandle(1 - rank, PEER_ID, this.peerAddress) : undefined;
    this.handles.push(target, ...(peer ? [peer] : []));
    return { runId, model, owner, rank, requests, target, peer, reference: new ReferenceStepper(model) };
  }

  /** Waits until `handle` is not running a step (a failed step may keep a worker busy until its peer timeout). */
  async settle(handle: WorkerHandle, what: string, maxMs: number): Promise<string> {
    const until = Date.now() + maxMs;
    for (;;) {
      const health = await handle.health(this.rpcMs);
      if (health.state !== 'running') return health.state;
      if (Date.now() > until) throw new CheckFailure(`${what} is still running a step (run ${health.runId}) ${maxMs} ms later`);
      await sleep(100);
    }
  }

  /** LoadShard on the worker under test and on the reference peer. Returns the worker's checksum. */
  async load(run: Run): Promise<string> {
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
   * One step of `run` on both ranks, the reference stepped alongside with the step's codec
   * rounding and batch split. Fails (CheckFailure) only for what is protocol: a step that does
   * not complete, a reply of the wrong step or shape (the step driver's own checks), replicas that
   * diverge. The numbers are returned for the numerical checks to judge.
   */
  async step(run: Run, step: number, input: StepSettingsInput): Promise<StepOutcome> {
    const settings = resolveStepSettings(input);
    const batch = run.reference.batch(step);
    const requests = runStepRequests(run.runId, step, batch, KIT_RANGES, stepOptionsToWire(settings));
    const [target, peer] = await Promise.allSettled([
      run.target.runStep(requests[run.rank]!, this.rpcMs),
      run.peer!.runStep(requests[1 - run.rank]!, this.rpcMs),
    ]);
    const shares = run.reference.shares(step, KIT_RANGES);
    const expected = run.reference.step(step, runMirror(settings, KIT_RANGES, KIT_TRAIN.seqLen));
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
    let metrics;
    try {
      metrics = gatherStep(step, replies, run.model, 0);
    } catch (error) {
      throw new CheckFailure(`${errorText(error)}${/param_checksum/.test(errorText(error)) ? ' (the all-reduce or the update is not bitwise the same on every rank)' : ''}`);
    }
    return { step, settings, replies, loss: metrics.loss, auxLoss: metrics.auxLoss, expected: { ...expected, shares } };
  }
}
