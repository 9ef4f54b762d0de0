/**
 * Executes one validated run on the serving scheduler's registered workers: gather them, run the
 * benchmark or the training, write the report under `<reportsDir>/<runId>/`, and return the
 * job's result. Progress goes to `onProgress` as it happens.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from '@moe/report';
import { runBench } from '../run/run-bench';
import { CHECKPOINT_FILE, loadCheckpoint } from '../run/checkpoint';
import { ParityError } from '../errors';
import { formatParity } from '@moe/model';
import type { SchedulerService } from '../control/rendezvous';
import { runTraining, type RunInfo } from '../run/train-run';
import type { StepMetrics } from '../run/step-replies';
import { withFields, type LogLine } from '@moe/log';
import { gatherWorkers } from './gather-workers';
import { InvalidRunError } from './errors';
import { claimReportDir } from './report-dir';
import { attemptRunId } from '../run/run-id';
import type { BenchRunSummary, RunProgress, RunResult, TrainRunSummary, ValidRun } from './run-job';

export interface RunContext {
  jobId: string;
  /** The run's id, unique for all time (`newRunId`); the same for every attempt of the job. */
  runId: string;
  /** The job's identity, recorded in the report folder so no other job ever writes there. */
  owner: { queuePrefix: string; submittedAt: number };
  /** 1-based attempt of the job. */
  attempt: number;
  scheduler: SchedulerService;
  /** Reports go to `<reportsDir>/<runId>/`. */
  reportsDir: string;
  /** Used when the job sets none. */
  rendezvousTimeoutMs: number;
  signal: AbortSignal;
  onProgress: (progress: RunProgress) => void;
  /** Every finished step, with its run (the service's metrics observe them). */
  onStep?: (kind: 'bench' | 'train', step: StepMetrics, run: RunInfo) => void;
  log: LogLine;
}

/** Steps between checkpoints of a queued training run. */
const TRAIN_CHECKPOINT_EVERY = 5;

/**
 * @throws InvalidRunError when the registered workers cannot run it (a bench on non-sim workers);
 *   ParityError when `checkReference` finds the run off the reference (the report is written);
 *   the scheduler's errors (RendezvousTimeoutError, WorkerLostError, WorkerRpcError, ...) when the
 *   run breaks; the signal's reason when aborted
 */
export async function executeRun(run: ValidRun, ctx: RunContext): Promise<RunResult> {
  const started = Date.now();
  const unit = run.kind === 'train' ? 'step' : 'run';
  const base = { kind: run.kind, runId: ctx.runId, attempt: ctx.attempt, unit } as const;
  const dir = join(ctx.reportsDir, ctx.runId);
  claimReportDir(dir, { runId: ctx.runId, jobId: ctx.jobId, ...ctx.owner });
  ctx.onProgress({ ...base, phase: 'waiting', done: 0, total: run.kind === 'train' ? run.train.steps : 0 });

  const cluster = await gatherWorkers(ctx.scheduler, {
    workers: run.workers,
    timeoutMs: run.rendezvousTimeoutMs ?? ctx.rendezvousTimeoutMs,
    signal: ctx.signal,
    log: ctx.log,
  });
  const workers = cluster.workers.map((w, rank) => ({ rank, workerId: w.workerId, address: w.address, backend: w.backend }));
  const workerIds = workers.map((w) => w.workerId);
  const runId = ctx.runId;
  // What the workers see: a leftover worker of an earlier attempt can never mix into this one.
  const wireRunId = attemptRunId(runId, ctx.attempt);
  // Lines carry the run's id; the workers' lines carry the attempt's (wireRunId), which starts with it.
  const log = withFields(ctx.log, { runId, attempt: ctx.attempt });
  log(`run ${runId} (${run.kind}), attempt ${ctx.attempt} as ${wireRunId}, on ${workers.length} workers: ${workers.map((w) => `rank ${w.rank} ${w.workerId}`).join(', ')}`);

  try {
    if (run.kind === 'bench') {
      const wrong = cluster.workers.filter((w) => w.backend !== 'sim');
      if (wrong.length) {
        throw new InvalidRunError(
          `invalid run: kind: a bench needs sim workers, and ${wrong.map((w) => `${w.workerId} runs "${w.backend || '?'}"`).join(', ')}; ` +
            'start the workers with --backend sim (MOE_BACKEND=sim)',
          'kind',
        );
      }
      let runs = { done: 0, total: 0, label: '' };
      let stepMs: number | undefined;
      const result = await runBench({
        ...run.bench,
        out: dir,
        command: `moe submit bench (run ${runId}, job ${ctx.jobId}): ${JSON.stringify(run.bench)}`,
        cluster,
        signal: ctx.signal,
        log,
        onStep: (m, info) => {
          ctx.onStep?.('bench', m, info);
          stepMs = m.stepMs;
          ctx.onProgress({ ...base, phase: 'running', ...runs, stepMs, workers: workerIds });
        },
        onProgress: (done, total, label) => {
          runs = { done, total, label };
          ctx.onProgress({ ...base, phase: 'running', ...runs, stepMs, workers: workerIds });
        },
      });
      const summary: BenchRunSummary = { ...result.report.summary, dilation: result.dilation, natural_ratio: result.naturalRatio };
      ctx.onProgress({ ...base, phase: 'done', ...runs, stepMs, workers: workerIds });
      return {
        kind: 'bench',
        jobId: ctx.jobId,
        attempt: ctx.attempt,
        runId,
        workers,
        summary,
        report: { dir, files: Object.values(result.files) },
        durationMs: Date.now() - started,
      };
    }

    const total = run.train.steps;
    // Real-math runs keep a checkpoint under the run's folder; a retry (a worker was lost)
    // continues from it instead of starting over. Simulated workers hold nothing to save.
    // runTraining refuses a checkpoint another run wrote (CheckpointError: never retried).
    const checkpointDir = workers.every((w) => w.backend !== 'sim') ? join(dir, 'checkpoint') : undefined;
    const resume =
      checkpointDir && ctx.attempt > 1 && existsSync(join(checkpointDir, CHECKPOINT_FILE)) ? loadCheckpoint(checkpointDir) : undefined;
    if (resume) log(`run ${runId}, attempt ${ctx.attempt}: continuing from the checkpoint after step ${resume.step}`);
    const result = await runTraining({
      checkpointDir,
      checkpointEvery: checkpointDir ? TRAIN_CHECKPOINT_EVERY : undefined,
      resume,
      model: run.model,
      train: run.train,
      workers: run.workers,
      cluster,
      step: run.step,
      placement: run.placement,
      backendOptions: run.backendOptions,
      stepTimeoutMs: run.stepTimeoutMs,
      rpcTimeoutMs: run.rpcTimeoutMs,
      checkReference: run.checkReference,
      tolerances: run.tolerances,
      signal: ctx.signal,
      runId,
      wireRunId,
      log,
      onReady: () => ctx.onProgress({ ...base, phase: 'running', done: 0, total, workers: workerIds }),
      onStep: (m, info) => {
        ctx.onStep?.('train', m, info);
        ctx.onProgress({ ...base, phase: 'running', done: m.step + 1, total, stepMs: m.stepMs, loss: m.loss, workers: workerIds });
      },
    });
    const parity = result.parity;
    const summary: TrainRunSummary = {
      steps: result.steps.length,
      final_loss: result.losses.at(-1) ?? null,
      entropy: result.entropy,
      train_ms: result.trainMs,
      median_step_ms: result.steps.length ? median(result.steps.map((s) => s.stepMs)) : null,
      parity: parity
        ? {
            ok: parity.ok,
            lossTolerance: parity.lossTolerance,
            paramTolerance: parity.paramTolerance,
            max_loss_relative: parity.loss.maxRelative,
            max_param_absolute: parity.params.maxAbsolute,
          }
        : null,
    };
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'run.json');
    writeFileSync(
      file,
      JSON.stringify(
        {
          jobId: ctx.jobId,
          runId,
          config: { model: run.model, train: run.train },
          settings: result.settings,
          workers,
          expertOwner: result.owner,
          summary,
          losses: result.losses,
          steps: result.steps.map((s) => ({ step: s.step, loss: s.loss, auxLoss: s.auxLoss, stepMs: s.stepMs, bytesSent: s.bytesSent })),
          reference: result.reference ?? null,
        },
        null,
        2,
      ),
    );
    if (parity && !parity.ok) {
      throw new ParityError(`the distributed run differs from the reference by more than the tolerance (report: ${file}): ${formatParity(parity)}`);
    }
    ctx.onProgress({ ...base, phase: 'done', done: result.steps.length, total, stepMs: result.steps.at(-1)?.stepMs, loss: result.losses.at(-1), workers: workerIds });
    return { kind: 'train', jobId: ctx.jobId, attempt: ctx.attempt, runId, workers, summary, report: { dir, files: [file] }, durationMs: Date.now() - started };
  } finally {
    await cluster.stop();
  }
}
