/**
 * The conformance kit: drives one worker through the contract of proto/moe/v1/moe.proto and
 * docs/custom-workers.md, and says pass, fail or skip for each check (checks/index.ts), with the
 * reason. Checks are independent: each loads its own run, a numerical failure fails only the
 * numerical checks, and a check is skipped only when something outside the worker is missing
 * (no worker at all, the kit's own reference peer, numbers of a modeled device).
 */
import { readableLine } from '@moe/log';
import { CHECK_TABLE, type Check } from './checks';
import { Kit } from './kit';
import type { ConformanceOptions } from './options';
import { commandFor, TargetCommand } from './target';
import { CheckFailure, CheckSkipped, type CheckResult, type ConformanceReport } from './report';

export type { ConformanceOptions } from './options';
export { CheckFailure, CheckSkipped, formatCheck, formatConformance, type CheckResult, type CheckStatus, type ConformanceReport } from './report';

/** [id, title] of every check, in the order they run. */
export const CHECKS: readonly (readonly [string, string])[] = CHECK_TABLE.map((c) => [c.id, c.title] as const);
export type CheckId = (typeof CHECK_TABLE)[number]['id'];

/**
 * Runs every check against one worker and returns the report. Everything the kit started (the
 * worker's command, the reference peer, its servers) is stopped before it returns.
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  if (!options.worker === !options.command) throw new RangeError('conformance: give exactly one of worker (host:port) and command');
  const kit = new Kit(options);
  try {
    return await runChecks(kit);
  } finally {
    await kit.stop();
  }
}

async function runChecks(kit: Kit): Promise<ConformanceReport> {
  const o = kit.o;
  const results: CheckResult[] = [];
  const record = (check: Check, status: CheckResult['status'], reason: string, ms: number) => {
    const result: CheckResult = { id: check.id, title: check.title, status, reason, ms };
    results.push(result);
    o.onCheck?.(result);
  };
  const schedulerAddress = await kit.scheduler.start();
  kit.log(`conformance: scheduler listening on ${schedulerAddress}`);
  if (o.command) {
    const command = commandFor(o.command, schedulerAddress);
    kit.log(`conformance: starting the worker: ${command}`);
    kit.target = new TargetCommand(command, o.cwd ?? process.cwd(), (line) => kit.log(`[worker] ${readableLine(line)}`));
  } else if (!o.skipRegister) {
    kit.log(`conformance: waiting for the worker at ${o.worker} to register (start it with --scheduler ${schedulerAddress})`);
  }
  if (o.peerBackend) kit.startPeer(o.peerBackend, schedulerAddress);

  let peerReady: boolean | undefined;
  let blocked = '';
  for (const check of CHECK_TABLE) {
    if (check.id === 'heartbeat' || check.id === 'health') {
      // after register: the worker's identity decides the peer's backend and whether numbers count
      if (!kit.address) blocked = 'no worker to test: it never registered';
      else if (check.id === 'heartbeat') {
        if (!kit.peerProcess) kit.startPeer(kit.registered && ['cpu', 'sim'].includes(kit.registered.backend) ? kit.registered.backend : 'cpu', schedulerAddress);
        kit.modeled = o.modeled ?? (kit.registered?.backend === 'sim' || !!kit.registered?.deviceProfile);
        if (kit.modeled) kit.log('conformance: the worker models a device: its numbers are not compared');
      }
    }
    if (blocked) {
      record(check, 'skip', blocked, 0);
      continue;
    }
    if (check.needs?.includes('peer')) {
      peerReady ??= await kit.waitForPeer();
      if (!peerReady) {
        record(check, 'skip', `the kit's reference peer did not start: ${kit.peerError}`, 0);
        continue;
      }
    }
    if (check.needs?.includes('numbers') && kit.modeled) {
      record(check, 'skip', 'the worker models a device: numbers are not compared', 0);
      continue;
    }
    const started = performance.now();
    try {
      record(check, 'pass', await check.run(kit), performance.now() - started);
    } catch (error) {
      const ms = performance.now() - started;
      if (error instanceof CheckSkipped) record(check, 'skip', error.message, ms);
      else record(check, 'fail', error instanceof CheckFailure ? error.message : `${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`, ms);
    }
    if (check.id === 'health' && results.at(-1)!.status !== 'pass') blocked = `needs health: the worker at ${kit.address} did not answer it properly`;
  }
  return {
    address: kit.address,
    workerId: kit.registered?.workerId ?? '',
    backend: kit.registered?.backend ?? '',
    modeled: kit.modeled,
    checks: results,
    ok: results.every((r) => r.status !== 'fail'),
  };
}
