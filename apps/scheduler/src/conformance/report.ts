/**
 * What the conformance kit reports: one result per check (pass, fail or skip, with the reason),
 * and how it is printed.
 */

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** Why it passed (what was seen), failed (what was wrong) or was skipped. */
  reason: string;
  ms: number;
}

export interface ConformanceReport {
  /** host:port of the worker under test ("" when it never showed up). */
  address: string;
  workerId: string;
  backend: string;
  /** Numbers were not compared: the worker models a device. */
  modeled: boolean;
  checks: CheckResult[];
  /** No check failed. */
  ok: boolean;
}

/** A check found the worker wrong: the message is the reason printed. */
export class CheckFailure extends Error {
  override readonly name = 'CheckFailure';
}

/** A check could not be run (a prerequisite outside the worker's control is missing). */
export class CheckSkipped extends Error {
  override readonly name = 'CheckSkipped';
}

/** Check results as printed: "PASS  register            reason", one per line, then a summary line. */
export function formatConformance(report: ConformanceReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length), 8);
  const lines = report.checks.map((c) => formatCheck(c, width));
  const count = (s: CheckStatus) => report.checks.filter((c) => c.status === s).length;
  lines.push(
    `conformance of ${report.workerId || 'the worker'}${report.address ? ` at ${report.address}` : ''}` +
      `${report.backend ? ` (backend ${report.backend}${report.modeled ? ', modeled: numbers not compared' : ''})` : ''}: ` +
      `${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped: ${report.ok ? 'PASS' : 'FAIL'}`,
  );
  return lines.join('\n');
}

export function formatCheck(c: CheckResult, width = 20): string {
  return `${c.status.toUpperCase().padEnd(4)}  ${c.id.padEnd(width)}  ${c.reason}${c.status === 'skip' ? '' : ` (${Math.round(c.ms)} ms)`}`;
}
