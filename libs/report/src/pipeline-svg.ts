/**
 * `pipeline.svg`: one row per pipeline rank, one box per chunk unit of a simulated step (the
 * picture of DeepSeek-V3 Figure 5 / the DualPipe README): forward (F), backward (B), weight
 * gradients (W) and overlapped forward-backward pairs (F&B), numbered by micro-batch; the
 * second direction of a bidirectional schedule in a lighter tint; the ZeRO-1 tail at the end.
 */
import { attrs, escapeXml, n, niceTicks, svgOpen, text, tint, wantsDarkText } from './svg';

export type PipelineBoxKind = 'F' | 'B' | 'W' | 'FB' | 'sync';

export interface PipelineBox {
  kind: PipelineBoxKind;
  startMs: number;
  endMs: number;
  /** Micro-batch shown in the box (-1: none). */
  microBatch: number;
  /** 0 or 1: the direction (route) of a bidirectional schedule. */
  route: number;
}

export interface PipelineSvgInput {
  title: string;
  /** One line under the title (step time, bubble ...). */
  subtitle: string;
  stepMs: number;
  /** [ranks] each pipeline rank's boxes. */
  ranks: PipelineBox[][];
}

const COLOURS: Record<PipelineBoxKind, string> = { F: '#0072B2', B: '#009E73', W: '#8C8C8C', FB: '#CC79A7', sync: '#D55E00' };
const NAMES: Record<PipelineBoxKind, string> = { F: 'forward (F)', B: 'backward (B)', W: 'weight gradients (W)', FB: 'forward & backward overlapped (F&B)', sync: 'ZeRO-1 sync + update' };

export function renderPipelineSvg(input: PipelineSvgInput): string {
  const left = 90;
  const right = 20;
  const top = 56;
  const rowH = 22;
  const plotW = 1100;
  const width = left + plotW + right;
  const height = top + input.ranks.length * rowH + 70;
  const x = (ms: number) => left + (ms / Math.max(input.stepMs, 1e-9)) * plotW;
  const out = [svgOpen(width, height, input.title)];
  out.push(text(left, 20, input.title, { 'font-size': 15, 'font-weight': 'bold' }));
  out.push(text(left, 40, input.subtitle, { fill: '#444444' }));
  input.ranks.forEach((boxes, rank) => {
    const y = top + rank * rowH;
    out.push(text(left - 8, y + rowH / 2 + 4, `rank ${rank}`, { 'text-anchor': 'end' }));
    out.push(`<rect ${attrs({ x: left, y, width: plotW, height: rowH - 2, fill: '#f4f4f4' })}/>`);
    for (const b of boxes) {
      const colour = b.route === 1 ? tint(COLOURS[b.kind], 0.45) : COLOURS[b.kind];
      const bx = x(b.startMs);
      const bw = Math.max(0.5, x(b.endMs) - bx);
      out.push(`<rect ${attrs({ x: bx, y, width: bw, height: rowH - 2, fill: colour, stroke: '#ffffff', 'stroke-width': 0.4 })}><title>${escapeXml(`${NAMES[b.kind]}${b.microBatch >= 0 ? ` micro-batch ${b.microBatch}` : ''}: ${b.startMs.toFixed(1)}-${b.endMs.toFixed(1)} ms`)}</title></rect>`);
      if (b.microBatch >= 0 && bw > 14) {
        out.push(text(bx + bw / 2, y + rowH / 2 + 3, String(b.microBatch), { 'text-anchor': 'middle', 'font-size': 9, fill: wantsDarkText(colour) ? '#000000' : '#ffffff' }));
      }
    }
  });
  const axisY = top + input.ranks.length * rowH + 4;
  for (const t of niceTicks(input.stepMs, 10)) {
    if (t > input.stepMs) break;
    out.push(`<line ${attrs({ x1: x(t), y1: axisY, x2: x(t), y2: axisY + 5, stroke: '#000000' })}/>`);
    out.push(text(x(t), axisY + 17, `${n(t)}`, { 'text-anchor': 'middle', 'font-size': 10 }));
  }
  out.push(text(left + plotW, axisY + 30, 'ms', { 'text-anchor': 'end', 'font-size': 10 }));
  let lx = left;
  const ly = axisY + 44;
  for (const kind of Object.keys(COLOURS) as PipelineBoxKind[]) {
    out.push(`<rect ${attrs({ x: lx, y: ly - 9, width: 12, height: 12, fill: COLOURS[kind] })}/>`);
    out.push(text(lx + 16, ly + 1, NAMES[kind], { 'font-size': 11 }));
    lx += 30 + NAMES[kind].length * 6.2;
  }
  out.push(text(lx, ly + 1, '(lighter: second direction)', { 'font-size': 11, fill: '#444444' }));
  out.push('</svg>');
  return out.join('\n');
}
