// The dashboard page: polls the service's JSON (api/workers, api/runs, api/runs/<id>) every
// second and renders it. Text goes in through textContent only: worker ids and reasons are data.
'use strict';

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
let selected = new URLSearchParams(location.hash.slice(1)).get('run');
/** The id of the run whose finished report is on the page (it does not change after the run ends). */
let reportShown = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${(await res.json().catch(() => ({}))).error ?? res.statusText}`);
  return res.json();
}

const fmtMs = (ms) => (ms === null || ms === undefined ? '–' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const fmtAgo = (ms) => (ms < 1000 ? `${Math.round(ms)} ms ago` : ms < 120000 ? `${(ms / 1000).toFixed(1)} s ago` : `${Math.round(ms / 60000)} min ago`);

function renderWorkers(data) {
  $('scheduler').textContent = `scheduler ${data.scheduler}`;
  const live = data.workers.filter((w) => !w.lost);
  $('worker-count').textContent = `${live.length} live${data.workers.length > live.length ? `, ${data.workers.length - live.length} lost` : ''}`;
  const body = $('workers').tBodies[0];
  body.replaceChildren(
    ...data.workers.map((w) => {
      const tr = el('tr');
      tr.dataset.worker = w.workerId;
      tr.append(
        el('td', w.workerId),
        el('td', w.backend + (w.deviceProfile ? ` (${w.deviceProfile})` : '')),
        el('td', w.address),
        el('td', fmtAgo(w.lastHeartbeatAgoMs)),
        el('td', w.runId ? `${w.runId} / ${w.step}` : 'idle'),
        el('td', w.lost ? 'lost' : 'ok', w.lost ? 'state-lost' : 'state-ok'),
      );
      return tr;
    }),
  );
}

function progressCell(p) {
  const td = el('td');
  if (!p) return td;
  const bar = el('span', null, 'bar');
  const fill = el('span');
  fill.style.width = `${p.total ? (100 * p.done) / p.total : 0}%`;
  bar.append(fill);
  td.append(bar, document.createTextNode(p.phase === 'waiting' ? 'waiting for workers' : `${p.unit} ${p.done}/${p.total}`));
  return td;
}

function renderRuns(data) {
  if (!selected && data.runs.length) selected = data.runs[0].id;
  const body = $('runs').tBodies[0];
  body.replaceChildren(
    ...data.runs.map((r) => {
      const tr = el('tr', null, `selectable${r.id === selected ? ' selected' : ''}`);
      tr.dataset.run = r.id;
      const p = r.progress;
      tr.append(
        el('td', r.id),
        el('td', r.kind),
        el('td', r.state, `state-${r.state}`),
        progressCell(p),
        el('td', fmtMs(p?.stepMs)),
        el('td', p?.loss === undefined ? '–' : p.loss.toFixed(4)),
        el('td', `${Math.max(1, r.attemptsStarted)} of ${r.attempts}`),
        el('td', r.summary ?? r.failedReason ?? p?.label ?? '', 'outcome'),
      );
      tr.addEventListener('click', () => select(r.id));
      return tr;
    }),
  );
}

/** A line chart of `values` (null gaps skipped) in the SVG `svg`, with its min and max written in. */
function chart(svg, values) {
  const points = values.map((v, i) => [i, v]).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  if (points.length === 0) return;
  const ys = points.map(([, v]) => v);
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const span = hi - lo || Math.abs(hi) || 1;
  const xMax = Math.max(1, values.length - 1);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', points.map(([x, y]) => `${((x / xMax) * 390 + 5).toFixed(1)},${(110 - ((y - lo) / span) * 100).toFixed(1)}`).join(' '));
  svg.append(line);
  for (const [text, y] of [[hi, 10], [lo, 118]]) {
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', '6');
    label.setAttribute('y', String(y));
    label.textContent = Math.abs(text) >= 100 ? text.toFixed(0) : text.toPrecision(3);
    svg.append(label);
  }
}

function renderReport(id, report) {
  $('report').hidden = false;
  const base = `api/runs/${encodeURIComponent(id)}/files/`;
  const files = $('report-files');
  files.replaceChildren();
  for (const name of report.files) {
    const a = el('a', name);
    a.href = base + encodeURIComponent(name);
    files.append(a, document.createTextNode(' '));
  }
  $('report-problem').hidden = !report.problem;
  $('report-problem').textContent = report.problem ?? '';
  $('report-table').hidden = !report.table;
  $('report-table').textContent = report.table ?? '';
  const has = (name) => report.files.includes(name);
  $('timeline-figure').hidden = !has('timeline.svg');
  if (has('timeline.svg')) $('timeline').src = base + 'timeline.svg';
  $('trace-link').hidden = !has('trace.json');
  if (has('trace.json')) $('trace-link').href = base + 'trace.json';
  $('sweep-figure').hidden = !has('sweep.svg');
  if (has('sweep.svg')) $('sweep').src = base + 'sweep.svg';
}

async function refreshRun() {
  if (!selected) return;
  const id = selected;
  const { run, progress, report } = await getJson(`api/runs/${encodeURIComponent(id)}`);
  if (id !== selected) return;
  $('run').hidden = false;
  $('run-id').textContent = run.id;
  $('run-state').textContent = run.state;
  $('run-state').className = `badge state-${run.state}`;
  $('run-summary').textContent = run.summary ?? run.failedReason ?? (run.progress ? `${run.progress.phase}: ${run.progress.label ?? ''}` : 'queued');
  // Training runs: the report's per-step figures once done; live: what this service saw.
  const steps = report?.steps;
  chart($('chart-step'), steps ? steps.map((s) => s.stepMs) : progress.map((p) => p.stepMs));
  chart($('chart-loss'), steps ? steps.map((s) => s.loss) : progress.map((p) => p.loss));
  if (report && reportShown !== id) {
    renderReport(id, report);
    reportShown = id;
  } else if (!report) {
    $('report').hidden = true;
    reportShown = null;
  }
}

function select(id) {
  selected = id;
  location.hash = `run=${encodeURIComponent(id)}`;
  for (const tr of $('runs').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.run === id);
  void refreshRun().catch(showError);
}

function showError(error) {
  $('status').textContent = `update failed: ${error.message}`;
}

async function tick() {
  try {
    const [workers, runs] = await Promise.all([getJson('api/workers'), getJson('api/runs')]);
    renderWorkers(workers);
    renderRuns(runs);
    await refreshRun();
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    showError(error);
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

window.addEventListener('hashchange', () => {
  const id = new URLSearchParams(location.hash.slice(1)).get('run');
  if (id && id !== selected) select(id);
});
tick();
