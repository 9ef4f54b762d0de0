// npm run test:compose: docker-compose.yml checked against a real Docker engine, as a user runs it
// (README, "The cluster in Docker"). Builds the image, starts the stack and waits for it to be
// healthy, runs a small benchmark through `docker compose exec`, checks the report files, scales
// the workers to 8 and runs again, restarts Redis and then the scheduler in the middle of a run and
// checks that the run completes, then `down` and `up` again: every run is still in the history, job
// ids go on, and no report was overwritten. Everything is torn down at the end (the image is kept).
// Needs a Docker engine with Compose v2; without one it says so and exits 1. Not part of `npm test`.
//
//   node scripts/compose-e2e.mjs [--screenshot docs/dashboard.png] [--keep]
//     --screenshot  before tearing down, photographs the dashboard (scripts/dashboard-screenshot.mjs)
//     --keep        leave the stack running (project moe-e2e) instead of tearing it down
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { check, composeOf, dashboardGet, E2eError, freePort, run, runOk, say, waitFor } from './compose-e2e/harness.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
process.chdir(ROOT);
const argv = process.argv.slice(2);
const screenshot = argv.includes('--screenshot') ? argv[argv.indexOf('--screenshot') + 1] : undefined;
const keep = argv.includes('--keep');

const PROJECT = 'moe-e2e';
/** A benchmark as small as one gets (a minute on an idle 2-core machine, several on a busy one); `steps` makes it longer. */
const bench = (workers, steps = 1) =>
  ['submit', 'bench', '--quick', '--workers', String(workers), '--ratios', '1', '--chunks', '2', '--warmup', '0', '--steps', String(steps), '--comm-target', '20', '--transport-seconds', '0'];
/**
 * A training run on the sim workers, for the restarts: no calibration (the benchmark's can need a
 * retry on a busy machine), progress every step, about 0.5 s a step.
 */
const train = (workers, steps) =>
  ['submit', 'train', '--workers', String(workers), '--steps', String(steps), '--backend-options', JSON.stringify({ profile: 'H800', dilation: 20, model: { hiddenSize: 64, expertFfnSize: 128 } })];
/** How long a run may take: generous, because a shared machine can be very busy (BullMQ retries included). */
const RUN_TIMEOUT_MS = 900_000;

async function engineOrExit() {
  const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 }).catch((error) => ({ code: -1, stderr: error.message }));
  if (info.code !== 0) {
    console.error(
      `compose-e2e: no Docker engine reachable (docker info: ${(info.stderr || '').trim().split('\n').pop() || `exit ${info.code}`}).\n` +
        'Start one (on these machines: ../shared/tools/docker-here.sh up; elsewhere: the Docker daemon) and run again. Nothing was tested.',
    );
    process.exit(1);
  }
  const compose = await run('docker', ['compose', 'version', '--short'], { timeoutMs: 20_000 });
  if (compose.code !== 0) {
    console.error('compose-e2e: the Docker engine answers but Compose v2 is missing (docker compose version failed). Nothing was tested.');
    process.exit(1);
  }
  say(`engine ${info.stdout.trim()}, compose ${compose.stdout.trim()}`);
}

await engineOrExit();
const token = randomBytes(12).toString('hex');
const ports = { redis: await freePort(), http: await freePort() };
const env = { MOE_REDIS_PORT: String(ports.redis), MOE_HTTP_PUBLISH: String(ports.http), MOE_CLUSTER_TOKEN: token };
const { compose, composeOk, moe } = composeOf(PROJECT, env);
const base = `http://127.0.0.1:${ports.http}/`;
const api = async (path) => {
  const res = await dashboardGet(base, path, token);
  check(res.status === 200, `GET ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body;
};

/** Submits `args` with --wait --json in the scheduler container, as the README does; returns the completed outcome. */
async function submitAndWait(args) {
  const r = await moe([...args, '--wait', '--json', '--no-progress'], { timeoutMs: RUN_TIMEOUT_MS });
  check(r.code === 0, `submit exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const outcome = JSON.parse(r.stdout);
  check(outcome.state === 'completed', `run ${outcome.jobId} ended ${outcome.state}: ${outcome.reason ?? ''}`);
  return outcome;
}

/** Submits `args` in the scheduler container without waiting; returns the job id. */
async function submit(args) {
  const r = await moe([...args, '--json'], { timeoutMs: 300_000 });
  check(r.code === 0, `submit exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout).jobId;
}

/** Follows run `id` on the dashboard's JSON (cheaper than a CLI in the container) until it completes; returns its row. */
function completed(id) {
  return waitFor(`run ${id} to complete`, async () => {
    const { run: r } = await api(`api/runs/${id}`);
    check(r.state !== 'failed', `run ${id} failed: ${r.failedReason}`);
    // A job read just as it completes can show the state before its result: poll until both are there.
    return r.state === 'completed' && r.result ? r : undefined;
  }, { timeoutMs: RUN_TIMEOUT_MS, everyMs: 2_000 });
}

/** sha256 of every file under the reports volume, by path. */
async function reportHashes() {
  const r = await composeOk(['exec', '-T', 'scheduler', 'sh', '-c', 'find /app/reports -type f -exec sha256sum {} +'], { timeoutMs: 60_000 });
  return new Map(r.stdout.trim().split('\n').filter(Boolean).map((line) => line.split(/\s+/).reverse()));
}

/** Live workers the scheduler reports, and the worker containers' count. */
async function liveWorkers() {
  return (await api('api/workers')).workers.filter((w) => !w.lost);
}

function checkWorkersOfRun(outcome, n) {
  const addresses = outcome.result.workers.map((w) => w.address);
  check(addresses.length === n && new Set(addresses).size === n, `run ${outcome.jobId}: expected ${n} distinct workers, got ${addresses.join(', ')}`);
  check(addresses.every((a) => !a.startsWith('127.')), `run ${outcome.jobId}: workers advertise loopback addresses (${addresses.join(', ')}), not their containers'`);
}

const upWait = (extra = []) => composeOk(['up', '-d', '--wait', '--wait-timeout', '240', ...extra], { timeoutMs: 300_000 });
const t0 = Date.now();
let failed = false;
try {
  await compose(['down', '-v', '--remove-orphans'], { timeoutMs: 120_000 }); // leftovers of an earlier, interrupted run
  say('building the image (docker compose build)');
  await composeOk(['build'], { timeoutMs: 1_200_000 });
  say(`starting redis, scheduler and 4 workers; waiting for every healthcheck (dashboard on ${base}, Redis on 127.0.0.1:${ports.redis})`);
  await upWait();

  const ids = (await composeOk(['ps', '-q'])).stdout.trim().split('\n');
  const images = (await runOk('docker', ['inspect', '--format', '{{.Config.Image}} {{.Image}} {{.State.Health.Status}} {{.Name}}', ...ids])).stdout.trim().split('\n');
  const ours = images.filter((line) => !line.includes('redis'));
  check(new Set(ours.map((line) => line.split(' ')[1])).size === 1, `scheduler and workers run different images:\n${ours.join('\n')}`);
  check(images.every((line) => line.split(' ')[2] === 'healthy'), `not every container is healthy:\n${images.join('\n')}`);
  say(`${ids.length} containers healthy; scheduler and workers share one image (${ours[0].split(' ')[0]})`);

  const logs = (await composeOk(['logs', '--no-color', 'scheduler'])).stdout;
  check(/listening on 0\.0\.0\.0:7000/.test(logs), `the scheduler's log does not name its bind address 0.0.0.0:7000:\n${logs.slice(-1500)}`);
  say('scheduler log: "listening on 0.0.0.0:7000" (the address it binds)');

  const refused = await dashboardGet(base, 'api/workers');
  check(refused.status === 401, `the dashboard answered ${refused.status} without the cluster token`);
  check((await dashboardGet(base, '', token)).status === 200 && (await dashboardGet(base, 'queues/', token)).status === 200, 'dashboard page or Bull Board not served');
  check((await liveWorkers()).length === 4, 'the scheduler does not list 4 live workers');
  say('dashboard: 401 without the token; page, Bull Board and 4 live workers with it');

  say('run 1: a small benchmark on 4 workers (docker compose exec scheduler node bin/moe.mjs submit bench ... --wait)');
  const first = await submitAndWait(bench(4));
  checkWorkersOfRun(first, 4);
  const hashes = await reportHashes();
  for (const file of first.result.report.files) check(hashes.has(file), `run ${first.jobId}: report file ${file} missing in the volume`);
  const svg = await dashboardGet(base, `api/runs/${first.jobId}/files/timeline.svg`, token);
  check(svg.status === 200 && svg.type.includes('svg') && svg.body.includes('<svg'), `the dashboard does not serve run ${first.jobId}'s timeline`);
  say(`run ${first.jobId} done on attempt ${first.result.attempt}: ${first.result.report.files.length} report files in ${first.result.report.dir}; timeline on the dashboard`);

  say('scaling the workers to 8 (docker compose up -d --scale worker=8 --wait)');
  await upWait(['--scale', 'worker=8']);
  await waitFor('8 live workers', async () => ((await liveWorkers()).length === 8 ? true : undefined), { timeoutMs: 180_000 });
  // Training, not a benchmark: a benchmark's calibration on 8 workers of a busy 2-core machine can
  // fail all its attempts (host transport swamps the modeled links); the point here is the 8 workers.
  const second = { jobId: await submit(train(8, 10)) };
  second.result = (await completed(second.jobId)).result;
  checkWorkersOfRun(second, 8);
  say(`run ${second.jobId} (training, 10 steps) done on 8 workers (${second.result.workers.map((w) => w.address).join(', ')})`);

  say('run 3: training on 4 sim workers (40 steps); Redis and then the scheduler restart while it runs');
  const third = await submit(train(4, 40));
  const running = await waitFor(`run ${third} to run a step`, async () => {
    const { run: r } = await api(`api/runs/${third}`);
    return r.state === 'active' && r.progress?.done >= 2 ? r.progress : undefined;
  }, { timeoutMs: RUN_TIMEOUT_MS });
  say(`run ${third} is running (${running.unit} ${running.done}/${running.total}); docker compose restart redis`);
  await composeOk(['restart', 'redis'], { timeoutMs: 120_000 });
  await waitFor('the scheduler to be healthy again (Redis back)', async () => ((await dashboardGet(base, 'healthz')).status === 200 ? true : undefined), { timeoutMs: 180_000 });
  const afterRedis = await waitFor(`run ${third} to go on after the Redis restart`, async () => {
    const { run: r } = await api(`api/runs/${third}`);
    check(r.state !== 'completed', `run ${third} completed before the scheduler restart: make it longer (train(4, steps))`);
    return r.state === 'active' && r.progress.done > running.done ? r : undefined;
  }, { timeoutMs: 300_000 });
  say(`Redis restarted; run ${third} still active and progressing (${afterRedis.progress.unit} ${afterRedis.progress.done}/${afterRedis.progress.total}); docker compose restart scheduler`);
  await composeOk(['restart', 'scheduler'], { timeoutMs: 120_000 });
  const done = await completed(third);
  check(done.result.attempt >= 2, `run ${third} completed on attempt ${done.result.attempt}: the scheduler restart did not interrupt it`);
  say(`run ${third} completed on attempt ${done.result.attempt} (the scheduler's SIGTERM put it back in the queue; the new scheduler ran it)`);

  say('docker compose down, then up again: the queue, the history and the reports must survive');
  const before = await reportHashes();
  await composeOk(['down'], { timeoutMs: 180_000 });
  await upWait();
  const history = (await api('api/runs?limit=50')).runs;
  for (const id of [first.jobId, second.jobId, third]) {
    const row = history.find((r) => r.id === id);
    check(row?.state === 'completed', `run ${id} is ${row ? row.state : 'gone'} after down/up`);
  }
  const fourth = { jobId: await submit(bench(4)) };
  fourth.result = (await completed(fourth.jobId)).result;
  check(![first.jobId, second.jobId, third].includes(fourth.jobId), `job id ${fourth.jobId} was given again after down/up`);
  const dirs = [first, second, done, fourth].map((o) => o.result.report.dir);
  check(new Set(dirs).size === 4, `report folders collide: ${dirs.join(', ')}`);
  const after = await reportHashes();
  const changed = [...before].filter(([file, hash]) => after.get(file) !== hash).map(([file]) => file);
  check(changed.length === 0, `reports overwritten or lost after down/up and run ${fourth.jobId}: ${changed.join(', ')}`);
  say(`after down/up: runs ${[first.jobId, second.jobId, third].join(', ')} still completed; run ${fourth.jobId} got a new id and folder; ${before.size} report files unchanged`);

  if (screenshot) {
    await runOk('node', ['scripts/dashboard-screenshot.mjs', `${base}?token=${token}#run=${fourth.jobId}`, screenshot], { timeoutMs: 120_000 });
    say(`dashboard screenshot: ${screenshot}`);
  }
} catch (error) {
  failed = true;
  console.error(`compose-e2e: FAILED: ${error instanceof E2eError ? error.message : error.stack}`);
  const logs = await compose(['logs', '--no-color', '--tail', '40'], { timeoutMs: 60_000 }).catch(() => ({ stdout: '' }));
  console.error(`--- last lines of each service's log ---\n${logs.stdout}`);
} finally {
  if (keep) say(`--keep: the stack runs on (docker compose -p ${PROJECT} down -v to remove it); token ${token}`);
  else {
    say('tearing down (docker compose down -v --remove-orphans)');
    await compose(['down', '-v', '--remove-orphans'], { timeoutMs: 180_000 });
  }
}
say(failed ? 'FAIL' : `PASS in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
process.exit(failed ? 1 : 0);
