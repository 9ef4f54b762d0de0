import { fmtMs, fmtRatio, fmtTick } from './format';
import { ratiosOf } from './metrics';
import { attrs, escapeXml, n, niceTicks, svgOpen, text } from './svg';
import { ReportError, type BenchReport, type Range } from './types';

export interface SweepSvgOptions {
  /** px; default 760 x 460. */
  width?: number;
  height?: number;
}

interface Series {
  /** 'naive', 'ideal', or a schedule's name (its best run). */
  key: string;
  label: string;
  colour: string;
  /** Horizontal offset in px so whiskers of series at one ratio do not hide each other. */
  dx: number;
  points: { ratio: number; range: Range; note?: string }[];
}

const MARGIN = { left: 72, right: 24, top: 76, bottom: 64 };

/** Colour and horizontal offset of each schedule other than naive, in the order they appear. */
const SCHEDULE_STYLES = [
  { colour: '#0072B2', dx: 7 },
  { colour: '#CC79A7', dx: 14 },
  { colour: '#56B4E9', dx: -14 },
];

function marker(key: Series['key'], x: number, y: number, colour: string): string {
  if (key === 'fb-overlap') return `<path ${attrs({ d: `M${n(x)},${n(y - 5.5)} L${n(x + 5.5)},${n(y + 4.5)} L${n(x - 5.5)},${n(y + 4.5)} Z`, fill: colour })}/>`;
  if (key !== 'naive' && key !== 'ideal') return `<rect ${attrs({ x: x - 4.5, y: y - 4.5, width: 9, height: 9, fill: colour })}/>`;
  if (key === 'ideal') return `<path ${attrs({ d: `M${n(x)},${n(y - 5.5)} L${n(x + 5.5)},${n(y)} L${n(x)},${n(y + 5.5)} L${n(x - 5.5)},${n(y)} Z`, fill: '#ffffff', stroke: colour, 'stroke-width': 1.8 })}/>`;
  return `<circle ${attrs({ cx: x, cy: y, r: 5, fill: colour })}/>`;
}

/**
 * `sweep.svg`: step time (median, whiskers min to max) against the compute-to-communication
 * ratio on a log2 axis, for the naive schedule, each other schedule's best run (its chunk count
 * beside each point) and the ideal (max of naive compute and comm). Every point is an element
 * of class `point <series>`.
 */
export function renderSweepSvg(report: BenchReport, options: SweepSvgOptions = {}): string {
  const width = options.width ?? 760;
  const height = options.height ?? 460;
  const ratios = ratiosOf(report.results);
  if (ratios.length === 0) throw new ReportError('renderSweepSvg: the report has no results to plot');

  const others = [...new Set(report.results.map((r) => r.schedule))].filter((s) => s !== 'naive');
  const naiveSeries: Series = { key: 'naive', label: 'naive', colour: '#D55E00', dx: -7, points: [] };
  const idealSeries: Series = { key: 'ideal', label: 'ideal: max(compute, comm) of naive', colour: '#009E73', dx: 0, points: [] };
  const scheduleSeries: Series[] = others.map((schedule, i) => ({
    key: schedule,
    label: `${schedule} (best C)`,
    ...SCHEDULE_STYLES[i % SCHEDULE_STYLES.length]!,
    points: [],
  }));
  const series: Series[] = [naiveSeries, ...scheduleSeries, idealSeries];
  for (const ratio of ratios) {
    const rows = report.results.filter((r) => r.ratio === ratio);
    const naive = rows.find((r) => r.schedule === 'naive');
    if (naive) naiveSeries.points.push({ ratio, range: naive.step_ms });
    for (const s of scheduleSeries) {
      const best = rows.find((r) => r.winner && r.schedule === s.key);
      if (best) s.points.push({ ratio, range: best.step_ms, note: `C${best.chunks}` });
    }
    const ideal = naive?.ideal_ms;
    if (ideal != null) idealSeries.points.push({ ratio, range: { min: ideal, median: ideal, max: ideal } });
  }

  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const lo = Math.log2(ratios[0]!) - 0.5;
  const hi = Math.log2(ratios[ratios.length - 1]!) + 0.5;
  const x = (ratio: number) => MARGIN.left + ((Math.log2(ratio) - lo) / (hi - lo)) * plotW;
  const maxY = Math.max(...series.flatMap((s) => s.points.map((p) => p.range.max)));
  const yTicks = niceTicks(maxY * 1.05, 6, true);
  const yMax = yTicks[yTicks.length - 1]!;
  const y = (ms: number) => MARGIN.top + plotH - (ms / yMax) * plotH;

  const out: string[] = [svgOpen(width, height, 'Step time against the compute-to-communication ratio')];
  out.push(text(MARGIN.left, 24, 'Step time against the compute-to-communication ratio', { 'font-size': 15, 'font-weight': 'bold', fill: '#111111' }));
  out.push(
    text(MARGIN.left, 40, 'median step_ms, whiskers min to max over the measured steps', { 'font-size': 11, fill: '#555555' }),
  );

  // Grid and axes.
  for (const t of yTicks) {
    out.push(`<line ${attrs({ x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y(t), y2: y(t), stroke: t === 0 ? '#555555' : '#e3e5e9', 'stroke-width': 1 })}/>`);
    out.push(text(MARGIN.left - 8, y(t) + 4, fmtTick(t), { 'font-size': 11, fill: '#444444', 'text-anchor': 'end' }));
  }
  for (const r of ratios) {
    out.push(`<line ${attrs({ x1: x(r), x2: x(r), y1: MARGIN.top, y2: MARGIN.top + plotH, stroke: '#eef0f3', 'stroke-width': 1 })}/>`);
    out.push(`<line ${attrs({ x1: x(r), x2: x(r), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 5, stroke: '#555555', 'stroke-width': 1 })}/>`);
    out.push(text(x(r), MARGIN.top + plotH + 19, fmtRatio(r), { 'font-size': 11, fill: '#444444', 'text-anchor': 'middle' }));
  }
  out.push(`<line ${attrs({ x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH, stroke: '#555555', 'stroke-width': 1 })}/>`);
  out.push(
    text(MARGIN.left + plotW / 2, height - 16, 'compute-to-communication ratio (log2 scale)', { 'font-size': 12, fill: '#222222', 'text-anchor': 'middle' }),
  );
  const yl = MARGIN.top + plotH / 2;
  out.push(text(18, yl, 'step time (ms)', { 'font-size': 12, fill: '#222222', 'text-anchor': 'middle', transform: `rotate(-90 18 ${n(yl)})` }));

  // Series: line through medians, whiskers, markers.
  for (const s of series) {
    if (s.points.length === 0) continue;
    const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${n(x(p.ratio) + s.dx)},${n(y(p.range.median))}`).join(' ');
    out.push(
      `<path ${attrs({ class: `line ${s.key}`, d: path, fill: 'none', stroke: s.colour, 'stroke-width': 2, 'stroke-dasharray': s.key === 'ideal' ? '6 4' : undefined })}/>`,
    );
    for (const p of s.points) {
      const px = x(p.ratio) + s.dx;
      const parts: string[] = [];
      if (p.range.max > p.range.min) {
        parts.push(
          `<line ${attrs({ x1: px, x2: px, y1: y(p.range.min), y2: y(p.range.max), stroke: s.colour, 'stroke-width': 1.4 })}/>`,
          `<line ${attrs({ x1: px - 4, x2: px + 4, y1: y(p.range.min), y2: y(p.range.min), stroke: s.colour, 'stroke-width': 1.4 })}/>`,
          `<line ${attrs({ x1: px - 4, x2: px + 4, y1: y(p.range.max), y2: y(p.range.max), stroke: s.colour, 'stroke-width': 1.4 })}/>`,
        );
      }
      parts.push(marker(s.key, px, y(p.range.median), s.colour));
      if (p.note) parts.push(text(px + 7, y(p.range.median) - 8, p.note, { 'font-size': 10, fill: s.colour }));
      const tip = `${s.label}, ratio ${fmtRatio(p.ratio)}: ${fmtMs(p.range.median)} ms (${fmtMs(p.range.min)}–${fmtMs(p.range.max)})`;
      out.push(`<g class="point ${s.key}"><title>${escapeXml(tip)}</title>${parts.join('')}</g>`);
    }
  }

  // Legend: one row between the subtitle and the plot.
  let lx = MARGIN.left;
  const ly = 60;
  for (const s of series.filter((s) => s.points.length > 0)) {
    out.push(`<g class="legend">`);
    out.push(`<line ${attrs({ x1: lx, x2: lx + 24, y1: ly, y2: ly, stroke: s.colour, 'stroke-width': 2, 'stroke-dasharray': s.key === 'ideal' ? '6 4' : undefined })}/>`);
    out.push(marker(s.key, lx + 12, ly, s.colour));
    out.push(text(lx + 31, ly + 4, s.label, { 'font-size': 11, fill: '#222222' }));
    out.push('</g>');
    lx += 31 + s.label.length * 11 * 0.56 + 22;
  }

  out.push('</svg>', '');
  return out.join('\n');
}
