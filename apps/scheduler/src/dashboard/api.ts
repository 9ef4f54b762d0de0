/**
 * The dashboard's JSON: the registered workers, recent runs with their live progress, and one
 * run in full (its progress over time and its report), plus the report's files by name.
 */
import express, { type Router } from 'express';
import type { SchedulerService } from '../control/rendezvous';
import { UnknownRunError } from '../queue/errors';
import { summaryLine } from '../queue/format-runs';
import type { RunQueue, RunRow } from '../queue/run-queue';
import type { ProgressHistory } from './progress-history';
import { ReportAccessError, reportFilePath, reportView } from './report-view';

export interface DashboardSources {
  scheduler: SchedulerService;
  runs: RunQueue;
  history: ProgressHistory;
  /** The service's reports folder: report files are served from inside it only. */
  reportsDir: string;
}

/** A run's row, with its result's summary as one line (what `moe runs` prints). */
const runJson = (row: RunRow) => ({ ...row, summary: row.result ? summaryLine(row.result) : null });

export function dashboardApi(sources: DashboardSources): Router {
  const api = express.Router();
  const { scheduler, runs, history, reportsDir } = sources;

  api.get('/workers', (_req, res) => {
    const now = Date.now();
    res.json({
      scheduler: scheduler.address,
      now,
      workers: scheduler.allWorkers().map((w) => ({
        workerId: w.workerId,
        address: w.address,
        backend: w.backend,
        deviceProfile: w.deviceProfile,
        pid: w.pid,
        registeredAt: w.registeredAt,
        lastHeartbeat: w.lastSeen,
        lastHeartbeatAgoMs: now - w.lastSeen,
        runId: w.runId,
        step: w.step,
        lost: w.lost,
      })),
    });
  });

  api.get('/runs', async (req, res) => {
    const limit = Math.min(200, Math.max(1, Number(req.query.limit) || 20));
    res.json({ runs: (await runs.list(limit)).map(runJson) });
  });

  api.get('/runs/:id', async (req, res) => {
    const row = await runs.get(req.params.id);
    res.json({
      run: runJson(row),
      progress: history.of(row.id),
      report: row.result ? reportView(row.result, reportsDir) : null,
    });
  });

  api.get('/runs/:id/files/:name', async (req, res) => {
    const row = await runs.get(req.params.id);
    const path = row.result ? reportFilePath(row.result, reportsDir, req.params.name) : undefined;
    if (!path) {
      res.status(404).json({ error: `run ${row.id} has no report file "${req.params.name}"${row.result ? '' : ' (it has not completed)'}` });
      return;
    }
    // Our own SVGs and JSON, but served from a folder: nothing in them may run script.
    res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    res.sendFile(path);
  });

  const onError: express.ErrorRequestHandler = (error: Error, _req, res, next) => {
    if (error instanceof UnknownRunError) res.status(404).json({ error: error.message });
    else if (error instanceof ReportAccessError) res.status(403).json({ error: error.message });
    else next(error);
  };
  api.use(onError);
  return api;
}
