/**
 * Prometheus' own tools for the metrics tests: `promtool check metrics` (the exposition format
 * and its naming conventions) and a real `prometheus` server scraping `moe serve`. Both come in
 * Debian's `prometheus` package; .ci/run installs it when missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis';
import { Proc } from './redis-service';

export const PROMETHEUS_INSTALL_HINT =
  'The metrics tests need promtool and prometheus: `sudo apt-get install prometheus` (Debian/Ubuntu; .ci/run does it), ' +
  '`brew install prometheus` (macOS).';

function requireBinary(name: string): void {
  const found = spawnSync(name, ['--version'], { encoding: 'utf8' });
  if (found.error) throw new Error(`${name} not found (${found.error.message}). ${PROMETHEUS_INSTALL_HINT}`);
}

/** `promtool check metrics` on `exposition`: exit code and what it said (problems, one a line). */
export function promtoolCheck(exposition: string): { code: number | null; said: string } {
  requireBinary('promtool');
  const run = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  return { code: run.status, said: `${run.stdout}${run.stderr}`.trim() };
}

export interface TestPrometheus {
  /** http://127.0.0.1:PORT of its web API. */
  url: string;
  proc: Proc;
  /** An instant query's result vector. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  stop(): Promise<void>;
}

/** Starts prometheus scraping `targets` (host:port, path /metrics) every 500 ms, with a temporary storage dir. */
export async function startPrometheus(job: string, targets: readonly string[]): Promise<TestPrometheus> {
  requireBinary('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'moe-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 500ms',
      '  scrape_timeout: 400ms',
      'scrape_configs:',
      `  - job_name: ${job}`,
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = new Proc(
    'prometheus',
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    process.env,
  );
  const stop = async () => {
    await proc.stop('SIGTERM', 5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const give = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (!proc.running || Date.now() > give) {
      await stop();
      throw new Error(`prometheus did not become ready at ${url} within 30 s; it said:\n${proc.output.slice(-2_000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const query = async (promql: string) => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`prometheus query ${promql} failed: ${body.error ?? res.status}`);
    return body.data!.result;
  };
  return { url, proc, query, stop };
}
