// What the compose end-to-end test stands on: running commands with a deadline, docker compose
// on a project of the test's own, the dashboard's JSON from the host, and waiting with a timeout.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

const started = Date.now();

/** A line of the test's log, with the seconds since it began. */
export function say(line) {
  console.log(`[compose-e2e +${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);
}

export class E2eError extends Error {
  name = 'E2eError';
}

/** Fails the test with `message` unless `ok`. */
export function check(ok, message) {
  if (!ok) throw new E2eError(message);
}

/**
 * Runs `command args` with `env` added, up to `timeoutMs`; resolves { code, stdout, stderr }.
 * `echo`: the output is shown as it comes (long builds), else kept for messages.
 */
export function run(command, args, { env = {}, timeoutMs = 60_000, echo = false, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (echo) process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (echo) process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new E2eError(`${command} ${args.join(' ')}: no end within ${timeoutMs / 1000} s\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new E2eError(`cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** `run`, failing unless it exits 0. */
export async function runOk(command, args, options) {
  const result = await run(command, args, options);
  check(result.code === 0, `${command} ${args.join(' ')} exited ${result.code}:\n${(result.stderr || result.stdout).slice(-3000)}`);
  return result;
}

/** A TCP port free on the host's loopback now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined; fails after `timeoutMs` saying `what`. */
export async function waitFor(what, probe, { timeoutMs = 120_000, everyMs = 1_000 } = {}) {
  const give = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > give) throw new E2eError(`waited ${timeoutMs / 1000} s for ${what}${last ? ` (last error: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** docker compose on project `project`, with `env` (the compose file's variables). */
export function composeOf(project, env) {
  const compose = (args, options = {}) => run('docker', ['compose', '-p', project, ...args], { ...options, env: { ...env, ...options.env } });
  const composeOk = (args, options = {}) => runOk('docker', ['compose', '-p', project, ...args], { ...options, env: { ...env, ...options.env } });
  /** `moe <args>` in the scheduler container (the README's `docker compose exec scheduler node bin/moe.mjs ...`). */
  const moe = (args, options = {}) => compose(['exec', '-T', 'scheduler', 'node', 'bin/moe.mjs', ...args], options);
  return { compose, composeOk, moe };
}

/** GET `path` of the dashboard at `base` (with the cluster token); resolves { status, body } (JSON parsed when it is JSON). */
export async function dashboardGet(base, path, token) {
  const res = await fetch(new URL(path, base), { headers: token ? { 'x-moe-token': token, accept: 'application/json' } : { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text);
  return { status: res.status, body, type: res.headers.get('content-type') ?? '' };
}
