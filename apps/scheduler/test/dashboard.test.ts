/**
 * The dashboard of `moe serve`, in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): behind the cluster token it loads, shows the workers of a running cluster
 * (real `moe worker` processes, sim backend) and a finished benchmark's report with its timeline.
 * Real Redis (a private redis-server), real processes; `.ci/run` installs chromium when missing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { runMoe, startMoe, stopAll, type Proc } from './support/redis-service';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token';
const WORKER_IDS = ['dash-0', 'dash-1', 'dash-2', 'dash-3'];

let redis: TestRedis;
let env: NodeJS.ProcessEnv;
let serve: Proc;
let reportsDir: string;
let base: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`the dashboard test needs Debian's chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does it)`);
  redis = await startTestRedis();
  env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix, MOE_CLUSTER_TOKEN: TOKEN };
  const port = await freePort();
  reportsDir = mkdtempSync(join(tmpdir(), 'moe-dashboard-'));
  serve = startMoe('moe serve', ['serve', '--port', String(port), '--http-port', '0', '--reports', reportsDir, '--rendezvous-timeout', '30000'], env);
  base = `${(await serve.waitFor(/serve: dashboard on (http:\/\/[\w.:[\]-]+)/, 30_000))[1]}/`;
  const workers = WORKER_IDS.map((id) => startMoe(id, ['worker', '--scheduler', `127.0.0.1:${port}`, '--backend', 'sim', '--worker-id', id], env));
  // Four workers starting at once on a busy 2-core machine take a while.
  for (const [i, id] of WORKER_IDS.entries()) {
    await serve.waitFor(new RegExp(`worker ${id} registered at (\\S+)`), 90_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${id} said:\n${workers[i]!.output.slice(-2_000)}`);
    });
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await stopAll();
  await redis?.stop();
  if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
});

describe('the dashboard in a browser', () => {
  it('asks for the cluster token, then shows the registered workers with backend, address and heartbeat', async () => {
    const refused = await page.goto(base);
    expect(refused!.status()).toBe(401);
    await page.fill('input[name=token]', 'not-the-token');
    await page.click('button');
    await page.waitForSelector('text=Wrong token');
    await page.fill('input[name=token]', TOKEN);
    await Promise.all([page.waitForURL(base), page.click('button')]);

    const rows = page.locator('#workers tbody tr');
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(WORKER_IDS.length);
    for (const id of WORKER_IDS) {
      const address = serve.output.match(new RegExp(`worker ${id} registered at (\\S+)`))![1]!;
      const cells = await page.locator(`#workers tbody tr[data-worker="${id}"] td`).allTextContents();
      expect(cells[1]).toBe('sim');
      expect(cells[2]).toBe(address);
      expect(cells[3]).toMatch(/ago$/);
      expect(cells[5]).toBe('ok');
    }
    // The JSON behind it refuses a program without the token.
    expect((await fetch(`${base}api/workers`)).status).toBe(401);
  }, 60_000);

  it("shows a finished benchmark: its progress, the report's table, the timeline and sweep SVGs and trace.json", async () => {
    const submit = await runMoe(
      ['submit', 'bench', '--quick', '--workers', '4', '--ratios', '1', '--chunks', '2', '--warmup', '0', '--steps', '1', '--comm-target', '20', '--transport-seconds', '0', '--wait', '--json', '--no-progress'],
      env,
      240_000,
    );
    expect(submit.exit.code, submit.output).toBe(0);
    const { jobId } = JSON.parse(submit.stdout) as { jobId: string };

    await page.goto(`${base}#run=${jobId}`);
    const runRow = page.locator(`#runs tbody tr[data-run="${jobId}"] td`);
    await expect.poll(async () => (await runRow.allTextContents())[2], { timeout: 15_000 }).toBe('completed');
    expect((await runRow.allTextContents())[3]).toMatch(/run (\d+)\/\1/);
    // The step-time chart drew the progress this service saw while the bench ran.
    await page.waitForSelector('#chart-step polyline');

    // (Page code as strings: this project's TypeScript has no DOM types.) An image counts once the browser decoded it.
    const loaded = (selector: string) => `(() => { const img = document.querySelector('${selector}'); return Boolean(img && img.complete && img.naturalWidth > 0); })()`;
    await page.waitForFunction(loaded('#timeline'), undefined, { timeout: 15_000 });
    expect(await page.locator('#timeline-figure').isVisible()).toBe(true);
    expect(await page.evaluate(loaded('#sweep'))).toBe(true);
    expect(await page.locator('#report-table').textContent()).toMatch(/naive[\s\S]*overlapped/);

    const trace = await page.request.get(new URL((await page.locator('#trace-link').getAttribute('href'))!, base).href);
    expect(trace.status()).toBe(200);
    expect((await trace.json()) as object).toHaveProperty('traceEvents');
  }, 300_000);

  it('serves Bull Board with the runs queue', async () => {
    const queues = await page.request.get(`${base}queues/api/queues`);
    expect(queues.status()).toBe(200);
    const body = (await queues.json()) as { queues: { name: string; counts: Record<string, number> }[] };
    expect(body.queues.map((q) => q.name)).toContain('runs');
    expect(body.queues.find((q) => q.name === 'runs')!.counts.completed).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
