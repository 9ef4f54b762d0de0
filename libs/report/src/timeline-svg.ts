import { fmtMs, fmtRatio, fmtTick } from './format';
import { FAMILY_COLOURS, FAMILY_NAMES, opLabel, opStyle, opTag, type OpFamily } from './ops';
import { attrs, escapeXml, n, niceTicks, svgOpen, text, tint, wantsDarkText } from './svg';
import { ReportError, type OpRecordData, type Stream, type StepTimeline } from './types';

export interface TimelineSvgOptions {
  /** Width in px (default 1200). */
  width?: number;
  title?: string;
}

const LEFT = 172;
const RIGHT = 28;
const LANE = 15;
const LANE_GAP = 2;
const STREAM_GAP = 4;
const RANK_GAP = 10;
const PANEL_HEAD = 26;
const AXIS = 30;
const PANEL_GAP = 14;
const CHAR = 0.6; // estimated glyph width, in font sizes
const STREAMS: readonly Stream[] = ['compute', 'comm'];
/** Colours of the strip under each bar that tells micro-batches apart (a step-wide op has none). */
const MICRO_BATCH_COLOURS = ['#222222', '#E69F00', '#0072B2', '#D55E00', '#009E73', '#CC79A7', '#F0E442', '#56B4E9'];
const STRIP = 3;
const microBatchColour = (mb: number) => MICRO_BATCH_COLOURS[mb % MICRO_BATCH_COLOURS.length]!;
/** The micro-batches a step's ops name (none below 0: those are the step's update ops). */
const microBatchesIn = (panels: readonly StepTimeline[]): number =>
  Math.max(0, ...panels.flatMap((p) => p.timelines.flatMap((ops) => ops.map((op) => (op.microBatch ?? 0) + 1))));

/**
 * Puts each op in the first lane free at its start, so ops in flight together (several
 * all-to-alls on the comm stream) are drawn one above the other instead of on top of each other.
 * @returns [ops]: the lane of each op of `ops`, and the number of lanes (at least 1).
 */
export function assignLanes(ops: readonly OpRecordData[]): { lanes: number[]; count: number } {
  const order = ops.map((_, i) => i).sort((a, b) => ops[a]!.startMs - ops[b]!.startMs || ops[a]!.endMs - ops[b]!.endMs);
  const laneEnds: number[] = [];
  const lanes = new Array<number>(ops.length).fill(0);
  for (const i of order) {
    const op = ops[i]!;
    let lane = laneEnds.findIndex((end) => end <= op.startMs + 1e-9);
    if (lane < 0) lane = laneEnds.push(op.endMs) - 1;
    else laneEnds[lane] = op.endMs;
    lanes[i] = lane;
  }
  return { lanes, count: Math.max(1, laneEnds.length) };
}

/** The time a step's drawing has to hold (ms): its step time or its last op's end, whichever is later. */
export const stepExtentMs = (s: StepTimeline): number =>
  Math.max(s.stepMs, ...s.timelines.flatMap((ops) => ops.map((op) => op.endMs)));

function panelTitle(s: StepTimeline): string {
  const chunks = `${s.chunks} chunk${s.chunks === 1 ? '' : 's'}`;
  return `${s.schedule}, ${chunks}: step ${s.step}, ratio ${fmtRatio(s.ratio)}, step_ms ${fmtMs(s.stepMs)}`;
}

function legend(x0: number, y0: number, width: number, families: readonly OpFamily[], microBatches: number): { svg: string[]; height: number } {
  const items: { label: string; swatch: string }[] = families.map((f) => ({
    label: FAMILY_NAMES[f],
    swatch: `<rect ${attrs({ width: 14, height: 10, fill: FAMILY_COLOURS[f], rx: 1.5 })}/>`,
  }));
  if (microBatches > 1) {
    for (let mb = 0; mb < microBatches; mb++) {
      items.push({ label: `micro-batch ${mb} (strip, M${mb})`, swatch: `<rect ${attrs({ y: 7, width: 14, height: STRIP, fill: microBatchColour(mb) })}/>` });
    }
  }
  items.unshift(
    { label: 'forward: solid', swatch: `<rect ${attrs({ width: 14, height: 10, fill: '#4d4d4d', rx: 1.5 })}/>` },
    {
      label: 'backward: light, hatched',
      swatch: `<rect ${attrs({ width: 14, height: 10, fill: tint('#4d4d4d', 0.3), rx: 1.5 })}/><rect ${attrs({ width: 14, height: 10, fill: 'url(#backward)' })}/>`,
    },
  );
  const svg: string[] = [];
  let x = x0;
  let y = y0;
  for (const item of items) {
    const w = 20 + item.label.length * 11 * 0.56 + 20;
    if (x + w > x0 + width && x > x0) {
      x = x0;
      y += 18;
    }
    svg.push(`<g transform="translate(${n(x)},${n(y)})">${item.swatch}${text(19, 9.5, item.label, { 'font-size': 11, fill: '#333333' })}</g>`);
    x += w;
  }
  return { svg, height: y - y0 + 18 };
}

/**
 * `timeline.svg`: each panel one step (say one naive and one overlapped), one row per
 * (worker, stream), ops as bars coloured by kind, backward ops hatched, on a time axis (ms
 * since the worker received RunStep) shared by all panels and scaled to the longest step.
 * Every op is one `<rect class="op">` with a tooltip naming it.
 */
export function renderTimelineSvg(panels: readonly StepTimeline[], options: TimelineSvgOptions = {}): string {
  if (panels.length === 0) throw new ReportError('renderTimelineSvg needs at least 1 step to draw, got 0');
  const width = options.width ?? 1200;
  const plotW = width - LEFT - RIGHT;
  const extent = Math.max(...panels.map(stepExtentMs));
  const ticks = niceTicks(extent, Math.max(4, Math.round(plotW / 90)));
  const x = (ms: number) => LEFT + (Math.min(Math.max(ms, 0), extent) / extent) * plotW;

  const families = new Set<OpFamily>();
  for (const p of panels) for (const ops of p.timelines) for (const op of ops) families.add(opStyle(op.name).family);
  const familyOrder = (Object.keys(FAMILY_COLOURS) as OpFamily[]).filter((f) => families.has(f));

  const body: string[] = [];
  const title = options.title ?? `Per-worker timeline: ${panels.map((p) => `${p.schedule} (${p.chunks} chunk${p.chunks === 1 ? '' : 's'})`).join(' vs ')}`;
  body.push(text(12, 22, title, { 'font-size': 15, 'font-weight': 'bold', fill: '#111111' }));
  const microBatches = microBatchesIn(panels);
  const leg = legend(12, 34, width - 24, familyOrder, microBatches);
  body.push(...leg.svg);
  let y = 34 + leg.height + 10;

  panels.forEach((panel, pi) => {
    body.push(text(LEFT, y + 16, panelTitle(panel), { 'font-size': 13, 'font-weight': 'bold', fill: '#222222' }));
    const top = y + PANEL_HEAD;
    let rowY = top;
    const rows: string[] = [];
    const bars: string[] = [];
    panel.timelines.forEach((ops, rank) => {
      const rankTop = rowY;
      const streamRows = STREAMS.map((stream) => {
        const own = ops.filter((op) => op.stream === stream);
        const { lanes, count } = assignLanes(own);
        const h = count * LANE + (count - 1) * LANE_GAP;
        const row = { stream, own, lanes, top: rowY, h };
        rowY += h + STREAM_GAP;
        return row;
      });
      rowY += RANK_GAP - STREAM_GAP;
      rows.push(
        `<rect ${attrs({ x: 4, y: rankTop - 4, width: width - 8, height: rowY - rankTop - RANK_GAP + 8, fill: rank % 2 === 0 ? '#f4f5f7' : '#ffffff' })}/>`,
      );
      const id = panel.workerIds?.[rank];
      rows.push(text(12, streamRows[0]!.top + 11, `rank ${rank}`, { 'font-size': 12, 'font-weight': 'bold', fill: '#222222' }));
      if (id) rows.push(text(12, streamRows[1]!.top + 11, id.length > 18 ? `${id.slice(0, 17)}…` : id, { 'font-size': 10, fill: '#666666' }));
      for (const row of streamRows) {
        rows.push(text(LEFT - 8, row.top + row.h / 2 + 4, row.stream, { 'font-size': 11, fill: '#444444', 'text-anchor': 'end' }));
        rows.push(`<line ${attrs({ x1: LEFT, x2: LEFT + plotW, y1: row.top + row.h + 0.5, y2: row.top + row.h + 0.5, stroke: '#d9dce1', 'stroke-width': 1 })}/>`);
        row.own.forEach((op, i) => {
          const style = opStyle(op.name);
          const backward = op.direction === 'backward';
          const colour = FAMILY_COLOURS[style.family];
          const fill = backward ? tint(colour, 0.3) : colour;
          const bx = x(op.startMs);
          const bw = Math.max(0.8, x(op.endMs) - bx);
          const by = row.top + row.lanes[i]! * (LANE + LANE_GAP);
          const mb = op.microBatch ?? 0;
          const tip = `rank ${rank} ${op.stream}: ${opLabel(op)} (${op.direction}) ${fmtMs(op.startMs)}–${fmtMs(op.endMs)} ms, ${fmtMs(op.endMs - op.startMs)} ms${op.bytesSent > 0 ? `, ${op.bytesSent} bytes sent` : ''}`;
          bars.push(
            `<rect ${attrs({ class: 'op', 'data-op': opLabel(op), x: bx, y: by, width: bw, height: LANE, fill, stroke: '#ffffff', 'stroke-width': 0.6, 'data-micro-batch': mb })}><title>${escapeXml(tip)}</title></rect>`,
          );
          if (microBatches > 1 && mb >= 0) {
            bars.push(`<rect ${attrs({ class: 'micro-batch', x: bx, y: by + LANE - STRIP, width: bw, height: STRIP, fill: microBatchColour(mb) })}/>`);
          }
          if (backward) bars.push(`<rect ${attrs({ class: 'hatch', x: bx, y: by, width: bw, height: LANE, fill: 'url(#backward)' })}/>`);
          const tag = microBatches > 1 && mb >= 0 ? `${opTag(op)}m${mb}` : opTag(op);
          if (bw >= tag.length * 9 * CHAR + 4) {
            bars.push(
              text(bx + bw / 2, by + LANE / 2 + 3.2, tag, {
                'font-size': 9,
                'text-anchor': 'middle',
                fill: backward || wantsDarkText(fill) ? '#1a1a1a' : '#ffffff',
                'pointer-events': 'none',
              }),
            );
          }
        });
      }
    });
    const bottom = rowY - RANK_GAP + 4;
    const grid = ticks.map(
      (t) => `<line ${attrs({ x1: x(t), x2: x(t), y1: top - 4, y2: bottom, stroke: '#e3e5e9', 'stroke-width': 1 })}/>`,
    );
    const end = x(panel.stepMs);
    const marker = [
      `<line ${attrs({ x1: end, x2: end, y1: top - 6, y2: bottom, stroke: '#333333', 'stroke-width': 1.2, 'stroke-dasharray': '4 3' })}/>`,
      text(end - 3, top - 8, `reply ${fmtMs(panel.stepMs)} ms`, { 'font-size': 10, fill: '#333333', 'text-anchor': 'end' }),
    ];
    const axis = [
      `<line ${attrs({ x1: LEFT, x2: LEFT + plotW, y1: bottom, y2: bottom, stroke: '#555555', 'stroke-width': 1 })}/>`,
      ...ticks.flatMap((t) => [
        `<line ${attrs({ x1: x(t), x2: x(t), y1: bottom, y2: bottom + 5, stroke: '#555555', 'stroke-width': 1 })}/>`,
        text(x(t), bottom + 17, fmtTick(t), { 'font-size': 10, fill: '#444444', 'text-anchor': 'middle' }),
      ]),
    ];
    body.push(`<g class="panel" data-schedule="${escapeXml(panel.schedule)}">`, ...rows, ...grid, ...bars, ...marker, ...axis, '</g>');
    y = bottom + AXIS;
    if (pi === panels.length - 1) {
      body.push(text(LEFT + plotW / 2, y + 2, 'time since the worker received RunStep (ms)', { 'font-size': 11, fill: '#333333', 'text-anchor': 'middle' }));
      y += 14;
    } else {
      y += PANEL_GAP;
    }
  });

  const height = y + 8;
  return [
    svgOpen(width, height, title),
    '<defs>',
    `<pattern id="backward" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="2.2" height="6" fill="#ffffff" fill-opacity="0.55"/></pattern>`,
    '</defs>',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
