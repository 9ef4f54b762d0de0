/**
 * load-heatmap.svg: two heatmaps of one run's expert load, one row per layer. Left: tokens per
 * expert (layers x experts); right: tokens per GPU under the placement (layers x ranks), with each
 * layer's imbalance (max / mean tokens per GPU). Darker = more tokens, scaled per panel.
 */
import type { ExpertLoadReport } from './expert-load';
import { attrs, escapeXml, svgOpen, text, tint, wantsDarkText } from './svg';

const BASE = '#c0392b';
const CELL = 28;
const ROW = 22;

/** Fill for `value` of a panel whose largest value is `max`: white at 0, BASE at max. */
const shade = (value: number, max: number) => tint(BASE, max > 0 ? 1 - value / max : 1);

function panel(x0: number, y0: number, rows: number[][], columnLabel: (c: number) => string, title: string): string[] {
  const max = Math.max(0, ...rows.flat());
  const out = [text(x0, y0 - 26, title, { 'font-weight': 'bold' })];
  const columns = rows[0]?.length ?? 0;
  for (let c = 0; c < columns; c++) out.push(text(x0 + c * CELL + CELL / 2, y0 - 6, columnLabel(c), { 'text-anchor': 'middle', 'font-size': 10 }));
  rows.forEach((row, l) =>
    row.forEach((value, c) => {
      const fill = shade(value, max);
      const x = x0 + c * CELL;
      const y = y0 + l * ROW;
      out.push(`<rect ${attrs({ x, y, width: CELL - 1, height: ROW - 1, fill })}><title>${escapeXml(`layer ${l}, ${columnLabel(c)}: ${value} tokens`)}</title></rect>`);
      if (columns <= 32) {
        out.push(text(x + CELL / 2, y + ROW / 2 + 4, String(Math.round(value)), { 'text-anchor': 'middle', 'font-size': 9, fill: wantsDarkText(fill) ? '#222222' : '#ffffff' }));
      }
    }),
  );
  return out;
}

export function renderLoadHeatmapSvg(load: ExpertLoadReport, title = 'Expert load'): string {
  const layers = load.expertLoads.length;
  const experts = load.owner.length;
  const gpus = load.tokensPerGpu[0]?.length ?? 0;
  const left = 70;
  const top = 70;
  const gap = 60;
  const right = left + experts * CELL + gap;
  const width = right + gpus * CELL + 140;
  const height = top + layers * ROW + 50;
  const out = [svgOpen(width, height, title), text(10, 20, `${title}: tokens over ${load.steps} step(s); overall imbalance ${load.overallImbalance.toFixed(3)} (max / mean tokens per GPU)`)];
  for (let l = 0; l < layers; l++) out.push(text(left - 8, top + l * ROW + ROW / 2 + 4, `layer ${l}`, { 'text-anchor': 'end' }));
  out.push(...panel(left, top, load.expertLoads, (e) => `e${e}`, 'tokens per expert'));
  out.push(...panel(right, top, load.tokensPerGpu, (g) => `gpu ${g}`, 'tokens per GPU'));
  load.imbalance.forEach((x, l) => out.push(text(right + gpus * CELL + 8, top + l * ROW + ROW / 2 + 4, `imbalance ${x.toFixed(3)}`)));
  const placement = load.physical
    ? `gpu <- experts (copies of redundant experts counted per copy): ${Array.from({ length: gpus }, (_, g) => `${g}: ${load.physical!.physicalToLogical.filter((_, q) => load.physical!.physicalOwner[q] === g).map((e) => `e${e}`).join(',')}`).join('  ')}`
    : `expert -> gpu: ${load.owner.map((g, e) => `e${e}:${g}`).join(' ')}`;
  out.push(text(left, top + layers * ROW + 24, placement, { 'font-size': 10 }));
  out.push('</svg>');
  return out.join('\n');
}
