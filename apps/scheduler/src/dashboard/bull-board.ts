/** Bull Board (the queue's own UI: jobs by state, their data, progress, logs, retries) on an Express router. */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import type { Router } from 'express';

/** The router serving Bull Board for `queue`; mount it at `basePath` (its links are built from it). */
export function bullBoardRouter(queue: Queue, basePath: string): Router {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(basePath);
  createBullBoard({
    queues: [new BullMQAdapter(queue)],
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'moe runs' } },
  });
  return adapter.getRouter() as Router;
}
