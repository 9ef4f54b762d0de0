import type { Range } from './types';

/** ms with precision that suits its size: 1234, 84.2, 3.14, 0.052. */
export function fmtMs(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 100) return ms.toFixed(0);
  if (a >= 10) return ms.toFixed(1);
  if (a >= 0.1) return ms.toFixed(2);
  return ms === 0 ? '0' : ms.toPrecision(2);
}

/** A duration for people: "1.23 s" from a second up, else "84.2 ms"; "-" when unknown. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

/** An axis tick: 20, 2.5, 0.25 (no trailing zeros). */
export function fmtTick(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** `84.2 (80.1–90.3)`: median, then min–max; `dash` separates min and max. */
export function fmtRange(r: Range, dash = '–'): string {
  return `${fmtMs(r.median)} (${fmtMs(r.min)}${dash}${fmtMs(r.max)})`;
}

/** A fraction as a percentage: 0.423 -> `42%`, 0.0123 -> `1.2%`; null -> `–`. */
export function fmtPercent(x: number | null, none = '–'): string {
  if (x === null) return none;
  const pct = x * 100;
  return `${Math.abs(pct) >= 10 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

/** A speedup: 1.534 -> `1.53x`; null -> `–`. */
export function fmtTimes(x: number | null, none = '–', times = '×'): string {
  return x === null ? none : `${x.toFixed(2)}${times}`;
}

/** Decimal bytes: 1234567 -> `1.23 MB`. */
export function fmtBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toPrecision(3)} ${units[u]}`;
}

/** A setting's compute-to-communication ratio: 0.25, 0.5, 1, 2, 4. */
export function fmtRatio(ratio: number): string {
  return String(Number(ratio.toPrecision(4)));
}

/** Text columns padded to line up; `right[i]` right-aligns column i. */
export function alignColumns(rows: readonly (readonly string[])[], right: readonly boolean[] = []): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (right[i] ? cell.padStart(widths[i]!) : i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
