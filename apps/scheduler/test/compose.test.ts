/**
 * docker-compose.yml without a Docker engine: the file is read, and each service's command (the
 * Dockerfile's ENTRYPOINT + the service's `command`) runs as a local process with that service's
 * environment and nothing else, compose host names mapped to 127.0.0.1 and every port made
 * unique (each worker replica its own). A benchmark submitted the way the README says (`exec` in
 * the scheduler: its environment) must come back through the queue with its result.
 *
 * Not covered here: building the image, Docker's DNS, and `MOE_WORKER_ADVERTISE=auto` picking a
 * container's address (here the workers bind 127.0.0.1, so `auto` advertises 127.0.0.1:<port>).
 */
import { DATA_PLANE_NODE_FLAGS } from '@moe/comm';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARENT_GUARD, REPO_ROOT } from '../src/paths';
import type { RunResult } from '../src/queue/index';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { Proc, stopAll } from './support/redis-service';

interface ComposeService {
  build?: { context: string; args?: Record<string, string> };
  image?: string;
  pull_policy?: string;
  restart?: string;
  ports?: string[];
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  expose?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; retries?: number; start_period?: string };
  deploy?: { replicas?: number };
  stop_grace_period?: string;
}

/** Compose's `${VAR:-default}` interpolation, with the defaults (the host's environment is not the test's business). */
const interpolate = (text: string) => text.replace(/\$\{([A-Z0-9_]+):-([^}]*)\}/g, (_, _name: string, fallback: string) => fallback);
const compose = parse(interpolate(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'))) as { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };
const services = compose.services;
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
/** The final stage's ENTRYPOINT, exec form. */
const entrypoint = JSON.parse(dockerfile.match(/^ENTRYPOINT\s+(\[.*\])\s*$/m)![1]!) as string[];
/** The entrypoint without its node flags: what a one-off command (a healthcheck, `exec ... submit`) runs. */
const program = entrypoint.filter((arg) => !arg.startsWith('--'));
/** The image's WORKDIR: the repository root here. */
const workdir = dockerfile.match(/^WORKDIR\s+(\S+)\s*$/m)![1]!;

/** Every file under `dir` ending in .ts, tests left out. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'test' || name === 'node_modules' || name === 'generated' ? [] : sources(path);
    return name.endsWith('.ts') || name.endsWith('.mjs') ? [path] : [];
  });
}

/** Environment variable names the programs read: REDIS_URL and MOE_* as they appear in the sources. */
const READ_BY_PROGRAMS = new Set(
  [...sources(join(REPO_ROOT, 'apps')), ...sources(join(REPO_ROOT, 'libs'))].flatMap((file) => [
    ...readFileSync(file, 'utf8').matchAll(/\b(REDIS_URL|MOE_[A-Z0-9_]+)\b/g),
  ].map((m) => m[1]!)),
);

const seconds = (text: string | undefined, fallback: number) => (text ? Number(text.replace(/s$/, '')) : fallback);

describe('docker-compose.yml and the Dockerfile', () => {
  it('declare redis, a scheduler that serves and worker replicas, with healthchecks and variables the programs read', () => {
    // Services that start by default (an optional one, like prometheus, sits behind a profile).
    expect(Object.keys(services).filter((name) => !services[name]!.profiles).sort()).toEqual(['redis', 'scheduler', 'worker']);
    expect(services.scheduler!.command).toEqual(['serve']);
    expect(services.worker!.command).toEqual(['worker']);
    expect(services.worker!.deploy?.replicas).toBeGreaterThanOrEqual(2);
    for (const [name, service] of Object.entries(services)) {
      if (service.profiles) continue; // optional services (prometheus) are not ours to check here
      expect(service.healthcheck?.test[0], `${name}.healthcheck`).toBe('CMD');
      for (const key of Object.keys(service.environment ?? {})) {
        expect(READ_BY_PROGRAMS.has(key), `${name}.environment.${key} is read by no program`).toBe(true);
      }
    }
    expect(services.scheduler!.depends_on?.redis?.condition).toBe('service_healthy');
    expect(services.worker!.depends_on?.scheduler?.condition).toBe('service_healthy');
    // Addresses name a service and a port it exposes.
    const schedulerPort = services.scheduler!.environment!.MOE_SCHEDULER_PORT!;
    expect(services.scheduler!.expose).toContain(schedulerPort);
    expect(services.worker!.environment!.MOE_SCHEDULER).toBe(`scheduler:${schedulerPort}`);
    expect(services.scheduler!.environment!.REDIS_URL).toMatch(new RegExp(`^redis://redis:(${services.redis!.expose!.join('|')})$`));
    expect(services.worker!.expose).toContain(services.worker!.environment!.MOE_WORKER_PORT);
    // Replicas share one environment, so each must work out its own address.
    expect(services.worker!.environment!.MOE_WORKER_ADVERTISE).toBe('auto');
    expect(services.worker!.environment!.MOE_WORKER_HOST).toBe('0.0.0.0');
    // The reports survive the container: the directory serve writes to is a volume.
    const reports = services.scheduler!.environment!.MOE_REPORTS_DIR!;
    expect(services.scheduler!.volumes?.some((v) => v.endsWith(`:${reports}`))).toBe(true);
  });

  it('the Dockerfile builds offline: no # syntax line, multi-stage on a base image chosen by a build argument (default: the official Node 20), running bin/moe.mjs', () => {
    expect(dockerfile).not.toMatch(/^#\s*syntax\s*=/im);
    const stages = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)];
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const [, image] of stages) expect(image).toBe('${NODE_IMAGE}');
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    // Every workspace's manifest reaches `npm ci` (a lib added without it breaks the image).
    for (const dir of ['apps', 'libs']) {
      for (const name of readdirSync(join(REPO_ROOT, dir))) {
        if (existsSync(join(REPO_ROOT, dir, name, 'package.json'))) expect(dockerfile).toContain(`COPY ${dir}/${name}/package.json ${dir}/${name}/`);
      }
    }
    // Services move frames: they run with the flags a worker the scheduler starts runs with.
    expect(entrypoint).toEqual(['node', ...DATA_PLANE_NODE_FLAGS, 'bin/moe.mjs']);
    expect(existsSync(join(REPO_ROOT, program[1]!))).toBe(true);
  });

  it('one image for both services, built once with the base image as a build argument', () => {
    expect(services.scheduler!.build?.context).toBe('.');
    expect(services.scheduler!.build?.args?.NODE_IMAGE).toBe('node:20-bookworm-slim');
    expect(services.worker!.build).toBeUndefined();
    expect(services.worker!.image).toBe(services.scheduler!.image);
    expect(services.worker!.pull_policy).toBe('never');
  });

  it('Redis keeps the queue: append-only file on a named volume, a restart policy', () => {
    const command = services.redis!.command!;
    expect(command[command.indexOf('--appendonly') + 1]).toBe('yes');
    const dir = command[command.indexOf('--dir') + 1]!;
    const volume = services.redis!.volumes!.find((v) => v.endsWith(`:${dir}`))!;
    expect(compose.volumes).toHaveProperty(volume.split(':')[0]!);
    expect(services.redis!.restart).toBe('unless-stopped');
  });

  it('healthchecks ask the programs whether they are ready (moe health), not whether a port opens', () => {
    expect(services.scheduler!.healthcheck!.test).toEqual(['CMD', ...program, 'health', 'scheduler']);
    expect(services.worker!.healthcheck!.test).toEqual(['CMD', ...program, 'health', 'worker']);
    expect(services.worker!.environment!.MOE_WORKER_STATUS_FILE).toMatch(/^\//);
    // The dashboard is published on the host's loopback only.
    expect(services.scheduler!.ports).toEqual([`127.0.0.1:8080:${services.scheduler!.environment!.MOE_HTTP_PORT}`]);
  });
});

describe("the README's service section", () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Running as a service'), readme.indexOf('\n## ', readme.indexOf('## Running as a service') + 1));
  const raw = readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8');

  it('matches docker-compose.yml: service names, the exec command, the reports volume, the published Redis port', () => {
    expect(section.length).toBeGreaterThan(0);
    const execs = [...section.matchAll(/docker compose exec (\S+) (node bin\/moe\.mjs) (\S+)/g)];
    expect(execs.length).toBeGreaterThan(0);
    for (const [, service, execProgram, command] of execs) {
      expect(services[service!], `README execs in "${service}"`).toBeDefined();
      expect(execProgram!.split(' ')).toEqual(program);
      expect(['submit', 'runs', 'cancel']).toContain(command);
    }
    for (const [, service] of section.matchAll(/--scale (\S+)=\d+/g)) expect(services[service!]).toBeDefined();
    const reports = services.scheduler!.environment!.MOE_REPORTS_DIR!;
    expect(section).toContain(`docker compose cp scheduler:${reports}/`);
    const published = raw.match(/\$\{MOE_REDIS_PORT:-(\d+)\}:6379/)![1]!;
    expect(section).toContain(`REDIS_URL=redis://127.0.0.1:${published}`);
    // Every variable in the table is one the programs read.
    const table = section.split('\n').filter((line) => line.startsWith('| `')).join('\n');
    const documented = [...table.matchAll(/`(REDIS_URL|MOE_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThan(10);
    for (const name of documented) expect(READ_BY_PROGRAMS.has(name), name).toBe(true);
    // ... and every variable compose sets is documented there.
    for (const service of Object.values(services)) for (const key of Object.keys(service.environment ?? {})) expect(documented, key).toContain(key);
  });
});

describe('the compose services as local processes', () => {
  let redis: TestRedis;
  let reportsDir: string;
  /** (service, container port) -> a unique local port; one entry per worker replica. */
  const ports = new Map<string, number>();
  const procs: Record<string, Proc[]> = {};

  /** A service's environment as compose gives it, mapped onto this machine. `replica` picks the worker's ports. */
  async function localEnv(name: string, replica = 0): Promise<NodeJS.ProcessEnv> {
    const service = services[name]!;
    const local = async (svc: string, port: string) => {
      if (svc === 'redis') return new URL(redis.url).port;
      const key = `${svc}:${port}:${svc === name ? replica : 0}`;
      if (!ports.has(key)) ports.set(key, await freePort());
      return String(ports.get(key));
    };
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [key, raw] of Object.entries(service.environment ?? {})) {
      let value = String(raw);
      if (value === '0.0.0.0') value = '127.0.0.1'; // bind the loopback only
      else if ((service.expose ?? []).includes(value)) value = await local(name, value); // a port of its own
      else {
        for (const match of [...value.matchAll(/\b([a-z][a-z0-9_-]*):(\d+)\b/g)]) {
          if (services[match[1]!]) value = value.replace(match[0], `127.0.0.1:${await local(match[1]!, match[2]!)}`);
        }
      }
      // A file of its own per replica (containers each have their own /tmp).
      if (key === 'MOE_WORKER_STATUS_FILE') value = join(reportsDir, `${name}-${replica}-status.json`);
      for (const volume of service.volumes ?? []) {
        const target = volume.split(':')[1]!;
        if (value.startsWith(target)) value = reportsDir + value.slice(target.length);
      }
      env[key] = value;
    }
    if (env.MOE_QUEUE_PREFIX) env.MOE_QUEUE_PREFIX = redis.prefix; // a prefix of this test's own
    return env;
  }

  /** The Dockerfile's ENTRYPOINT + `args`, as a local node process (the parent guard preloaded). */
  function startService(label: string, args: readonly string[], env: NodeJS.ProcessEnv): Proc {
    expect(entrypoint[0]).toBe('node');
    const proc = new Proc(label, process.execPath, ['--import', pathToFileURL(PARENT_GUARD).href, ...entrypoint.slice(1), ...args], env);
    return proc;
  }

  /**
   * Runs the service's healthcheck (`CMD node ...`) with its environment until it passes, for as
   * long as Docker would before calling the container unhealthy (start period + retries x interval).
   */
  async function healthy(name: string, env: NodeJS.ProcessEnv): Promise<void> {
    const check = services[name]!.healthcheck!;
    const timeoutMs = (seconds(check.start_period, 0) + (check.retries ?? 3) * seconds(check.interval, 30)) * 1000;
    const [cmd, program, ...args] = check.test;
    expect(cmd).toBe('CMD');
    expect(program).toBe('node');
    const give = Date.now() + timeoutMs;
    for (;;) {
      const probe = spawnSync(process.execPath, args, { env, cwd: REPO_ROOT, timeout: 10_000 });
      if (probe.status === 0) return;
      if (Date.now() > give) throw new Error(`${name}: healthcheck still failing after ${timeoutMs} ms: ${probe.stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  beforeAll(async () => {
    redis = await startTestRedis();
    reportsDir = mkdtempSync(join(tmpdir(), 'moe-compose-test-'));
  });

  afterAll(async () => {
    await stopAll();
    await redis?.stop();
    if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
  });

  it('bring up scheduler and worker replicas, pass their healthchecks, run a benchmark submitted through the queue, and stop on SIGTERM', async () => {
    expect(workdir).toBe('/app');
    const schedulerEnv = await localEnv('scheduler');
    const scheduler = startService('scheduler', services.scheduler!.command!, schedulerEnv);
    procs.scheduler = [scheduler];
    await healthy('scheduler', schedulerEnv);

    const replicas = services.worker!.deploy!.replicas!;
    const workerEnvs = await Promise.all(Array.from({ length: replicas }, (_, i) => localEnv('worker', i)));
    procs.worker = workerEnvs.map((env, i) => startService(`worker-${i + 1}`, services.worker!.command!, env));
    await Promise.all(workerEnvs.map((env) => healthy('worker', env)));
    for (const env of workerEnvs) {
      // Each replica advertises its own address, and the scheduler registered it there.
      await scheduler.waitFor(new RegExp(`registered at 127\\.0\\.0\\.1:${env.MOE_WORKER_PORT} \\(backend ${env.MOE_BACKEND}`));
    }

    // README: docker compose exec scheduler node bin/moe.mjs submit bench --quick --wait (made small here).
    const submit = startService(
      'submit',
      ['submit', 'bench', '--quick', '--workers', String(replicas), '--ratios', '1', '--chunks', '2', '--warmup', '0', '--steps', '1', '--comm-target', '20', '--transport-seconds', '0', '--wait', '--json'],
      schedulerEnv,
    );
    const exit = await submit.exited;
    expect(exit.code, submit.output).toBe(0);
    const outcome = JSON.parse(submit.stdout) as { state: string; jobId: string; result: RunResult };
    expect(outcome.state).toBe('completed');
    expect(outcome.result.kind).toBe('bench');
    expect(outcome.result.workers).toHaveLength(replicas);
    expect(outcome.result.workers.map((w) => w.address).sort()).toEqual(workerEnvs.map((e) => `127.0.0.1:${e.MOE_WORKER_PORT}`).sort());
    expect(outcome.result.report.dir).toBe(join(reportsDir, outcome.result.runId)); // the run id, unique for all time, not the job id
    for (const file of outcome.result.report.files) expect(existsSync(file), file).toBe(true);

    // docker compose down: SIGTERM to every container, each must exit cleanly within its grace period.
    const exits = await Promise.all([
      scheduler.stop('SIGTERM', seconds(services.scheduler!.stop_grace_period, 10) * 1000),
      ...procs.worker.map((w) => w.stop('SIGTERM', seconds(services.worker!.stop_grace_period, 10) * 1000)),
    ]);
    for (const e of exits) expect(e).toEqual({ code: 0, signal: null });
    expect(scheduler.stderr).toMatch(/serve: stopped; queue closed/);
  }, 300_000);
});
