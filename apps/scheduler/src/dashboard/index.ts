/**
 * The dashboard of `moe serve`, mounted on its HTTP server: the page (`/`), its JSON (`/api`),
 * Bull Board for the queue (`/queues`) and the readiness probe (`/healthz`, public: it says only
 * whether the service is ready, and why not).
 */
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { QueueEvents } from 'bullmq';
import type { HttpServer } from '../http/index';
import { RunQueue } from '../queue/run-queue';
import type { QueueLocation } from '../queue/connection';
import type { RunService } from '../queue/run-service';
import { dashboardApi } from './api';
import { bullBoardRouter } from './bull-board';
import { ProgressHistory } from './progress-history';

export { ProgressHistory, type ProgressPoint } from './progress-history';
export { reportView, type ReportView } from './report-view';

/** The page's static files (index.html, dashboard.js, dashboard.css). */
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
export const BULL_BOARD_PATH = '/queues';

export interface Dashboard {
  close(): Promise<void>;
}

/** Mounts the dashboard of `service` on `http`; its own queue client and event listener close with it. */
export async function mountDashboard(http: HttpServer, service: RunService, location: QueueLocation, reportsDir: string): Promise<Dashboard> {
  const runs = await RunQueue.connect(location);
  let events: QueueEvents | undefined;
  try {
    events = await runs.events();
  } catch (error) {
    await runs.close();
    throw error;
  }
  const history = new ProgressHistory().listen(events);
  http.mount('/healthz', async (_req, res) => {
    const health = await service.health();
    res.status(health.ok ? 200 : 503).json(health);
  }, { public: true });
  http.mount('/api', dashboardApi({ scheduler: service.scheduler, runs, history, reportsDir }));
  http.mount(BULL_BOARD_PATH, bullBoardRouter(runs.queue, BULL_BOARD_PATH));
  http.mount('/', express.static(PUBLIC_DIR, { index: 'index.html' }));
  return {
    async close() {
      history.stop();
      await events?.close();
      await runs.close();
    },
  };
}
