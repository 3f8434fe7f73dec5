// The Quality tab: motion, FD, DVARS, tSNR, usable minutes, where each volume's time went,
// the latest volume's slices with the ROIs outlined, and alarms. Fed by `quality` and
// `setQuality` messages (webInterface.sendQuality; see docs/web-protocol.md).
//
// Everything is drawn on canvases that are reused; the page keeps at most MAX_RECORDS
// records of the current run and MAX_ALARMS alarm lines, so a long session does not grow it.

const MAX_RECORDS = 5000;
const MAX_ALARMS = 200;
const LATENCY_BARS = 120;  // volumes shown in the latency history
const $ = (id) => document.getElementById(id);

const COLORS = {
  x: "#d62728", y: "#2ca02c", z: "#1f77b4",
  fd: "#6a3d9a", dvars: "#b15928", threshold: "#c0392b", tr: "#c0392b",
};
// Where a volume's time goes, in order; colours of the latency bars.
const SEGMENTS = [
  ["waiting", "file complete, script not asking yet", "#f2c4a0"],
  ["scanner", "data service: read, anonymize, send", "#8c564b"],
  ["toServer", "data service -> server", "#e377c2"],
  ["toScript", "server -> script", "#7f7f7f"],
  ["script", "script (own work)", "#bcbd22"],
  ["check", "check", "#c7c7c7"],
  ["setup", "set-up", "#dbdb8d"],
  ["motion", "motion correction", "#1f77b4"],
  ["reslice", "reslice", "#aec7e8"],
  ["quality", "FD / DVARS / tSNR", "#ff7f0e"],
  ["smooth", "smoothing", "#2ca02c"],
  ["roi", "ROI means", "#98df8a"],
  ["glm", "GLM", "#d62728"],
  ["feedback", "result -> feedback peer(s)", "#9467bd"],
];
const ROI_COLORS = [[255, 215, 0], [0, 229, 255], [255, 64, 129], [118, 255, 3],
  [255, 145, 0], [213, 0, 249], [29, 233, 182], [255, 255, 255]];

// Counters a benchmark (or a curious experimenter) can read: window.rtcloudQuality.stats.
const stats = { records: 0, draws: 0, lastDrawMs: 0, maxDrawMs: 0, lagMs: [], drawMs: [] };
// ticks: the axis labels; latencyScale: the latency chart's height (both tested)
window.rtcloudQuality = { stats, ticks, latencyScale };

function keep(list, value) {
  list.push(value);
  if (list.length > 1000) list.shift();
}

const state = {
  runId: null,
  records: [],         // of the current run, in arrival order
  byTr: new Map(),     // trId -> index in records
  alarms: [],
  alarmCount: 0,
  slices: null,
  pending: false,
  send: null,
};

// ------------------------------------------------------------------ messages

export const handlers = {
  quality(msg) {
    stats.records += 1;
    const acked = msg.record.timeline && msg.record.timeline.resultAcked;
    if (acked) keep(stats.lagMs, Date.now() - acked * 1000);
    addRecord(msg.record, true);
    if (msg.slices) state.slices = msg.slices;
    schedule();
  },
  setQuality(msg) {
    state.runId = null;
    state.records = [];
    state.byTr.clear();
    state.alarms = [];
    state.alarmCount = 0;
    for (const record of msg.value || []) addRecord(record, false);
    state.slices = msg.slices || null;
    renderAlarms();
    schedule();
  },
};

export function init({ send }) {
  state.send = send;
  $("tab-quality").addEventListener("click", () => requestAnimationFrame(draw));
  $("clear-quality").addEventListener("click", () => send({ cmd: "clearQuality" }));
  window.addEventListener("resize", schedule);
}

function addRecord(record, live) {
  if (state.runId === null || record.runId > state.runId) {
    state.runId = record.runId;
    state.records = [];
    state.byTr.clear();
  } else if (record.runId < state.runId) {
    return;  // an older run's record: the tab shows the newest run
  }
  record.segments = segmentsOf(record);
  const known = state.byTr.get(record.trId);
  const previous = known === undefined ? null : state.records[known];
  if (previous) state.records[known] = record;  // completed by the server (late hops)
  else {
    state.byTr.set(record.trId, state.records.length);
    state.records.push(record);
  }
  if (state.records.length > MAX_RECORDS) {
    state.records.splice(0, state.records.length - MAX_RECORDS);
    state.byTr.clear();
    state.records.forEach((r, i) => state.byTr.set(r.trId, i));
  }
  checkAlarms(record, live, previous);
}

// The milliseconds of every segment of one volume's way (null where unknown).
function segmentsOf(record) {
  const out = {};
  const hops = record.hops || {};
  out.waiting = hops.waiting ?? null;
  out.scanner = hops.scanner ?? null;
  out.toServer = hops.toServer ?? null;
  out.toScript = hops.toScript ?? null;
  const stages = record.stagesMs || {};
  let stageSum = 0;
  for (const [key, ms] of Object.entries(stages)) {
    out[key] = ms;
    stageSum += ms || 0;
  }
  const t = record.timeline || {};
  if (t.received != null && t.resultSent != null) {
    out.script = Math.max(0, (t.resultSent - t.received) * 1000 - stageSum);
  }
  if (t.resultSent != null && t.resultAcked != null) {
    out.feedback = Math.max(0, (t.resultAcked - t.resultSent) * 1000);
  }
  return out;
}

function totalMs(segments) {
  let total = 0;
  for (const [key] of SEGMENTS) total += segments[key] || 0;
  return total;
}

// Over the FD threshold: as the record says, else (a script's own record with fd and
// fdThreshold only) by comparing the two.
function isOver(record) {
  if (record.overThreshold !== undefined && record.overThreshold !== null) return Boolean(record.overThreshold);
  return Number.isFinite(record.fd) && Number.isFinite(record.fdThreshold) && record.fd > record.fdThreshold;
}

function isLate(record) {
  return Boolean(record.tr && record.segments.feedback != null &&
    totalMs(record.segments) > record.tr * 1000);
}

// A record sent again (completed by the server) raises only the alarm it did not raise yet.
function checkAlarms(record, live, previous) {
  const tr = record.trId;
  const lines = [];
  if (isOver(record) && !previous) {
    lines.push(`volume ${tr}: FD ${fmt(record.fd, 2)} mm is over the threshold (${fmt(record.fdThreshold, 2)} mm)`);
  }
  if (isLate(record) && !(previous && isLate(previous))) {
    const total = totalMs(record.segments);
    lines.push(`volume ${tr}: the result reached the feedback ${fmt(total, 0)} ms after the file was complete, later than its TR (${fmt(record.tr * 1000, 0)} ms)`);
  }
  if (!previous) for (const problem of record.problems || []) lines.push(`volume ${tr}: ${problem.message}`);
  if (!lines.length) return;
  state.alarmCount += lines.length;
  for (const line of lines) state.alarms.push(line);
  if (state.alarms.length > MAX_ALARMS) state.alarms.splice(0, state.alarms.length - MAX_ALARMS);
  if (live) renderAlarms(lines[lines.length - 1]);
}

function renderAlarms(latest) {
  const banner = $("q-alarm");
  if (latest) {
    banner.textContent = latest;
    banner.hidden = false;
    banner.classList.remove("flash");
    void banner.offsetWidth;  // restart the animation
    banner.classList.add("flash");
  } else if (!state.alarms.length) {
    banner.hidden = true;
  }
  $("q-alarm-count").textContent = String(state.alarmCount);
  $("q-alarm-count").dataset.count = String(state.alarmCount);
  // 30 lines made once, their text replaced: a long run adds no nodes
  const list = $("q-alarms");
  while (list.childElementCount < 30) list.appendChild(document.createElement("div"));
  const newest = state.alarms.slice(-30).reverse();
  [...list.children].forEach((div, i) => {
    div.textContent = newest[i] || "";
    div.hidden = i >= newest.length;
  });
}

// ------------------------------------------------------------------ drawing

function schedule() {
  if (state.pending) return;
  state.pending = true;
  requestAnimationFrame(() => {
    state.pending = false;
    draw();
  });
}

function visible() {
  return $("pane-quality").classList.contains("active");
}

function fmt(value, digits) {
  return value === null || value === undefined || Number.isNaN(value) ? "-" : Number(value).toFixed(digits);
}

function draw() {
  const records = state.records;
  const last = records[records.length - 1];
  $("q-summary").dataset.volumes = String(records.length);
  $("q-run").textContent = state.runId === null ? "-" : String(state.runId);
  $("q-volumes").textContent = last ? String(last.volumes ?? records.length) : "0";
  $("q-over").textContent = last
    ? `${last.volumesOver ?? records.filter(isOver).length}` : "0";
  $("q-usable").textContent = last && last.usableMinutes != null ? `${fmt(last.usableMinutes, 2)} min` : "-";
  $("q-tsnr").textContent = last ? fmt(last.tsnr, 1) : "-";
  $("q-fd").textContent = last ? `${fmt(last.fd, 2)} mm` : "-";
  $("q-latency").textContent = last ? `${fmt(totalMs(last.segments), 1)} ms` : "-";
  $("q-empty").hidden = records.length > 0;
  if (!visible()) return;
  const began = performance.now();
  const xs = records.map((r) => r.trId);
  const m = (k) => records.map((r) => (r.motion ? r.motion[k] : null));
  lineChart($("q-translation"), xs, [
    { ys: m(0), color: COLORS.x, label: "x" }, { ys: m(1), color: COLORS.y, label: "y" },
    { ys: m(2), color: COLORS.z, label: "z" }], { title: "Translation (mm)" });
  lineChart($("q-rotation"), xs, [
    { ys: m(3), color: COLORS.x, label: "pitch (x)" }, { ys: m(4), color: COLORS.y, label: "roll (y)" },
    { ys: m(5), color: COLORS.z, label: "yaw (z)" }], { title: "Rotation (deg)" });
  const threshold = last ? last.fdThreshold : null;
  lineChart($("q-fdchart"), xs, [{ ys: records.map((r) => r.fd), color: COLORS.fd, label: "FD" }],
    { title: "Framewise displacement (mm)", threshold, yMin: 0 });
  lineChart($("q-dvars"), xs, [{ ys: records.map((r) => r.dvars), color: COLORS.dvars, label: "DVARS" }],
    { title: "DVARS (0.1 % units)", yMin: 0 });
  latencyChart($("q-latency-chart"), records.slice(-LATENCY_BARS), last && last.tr);
  latencyTable(last);
  drawSlices();
  stats.draws += 1;
  stats.lastDrawMs = performance.now() - began;
  stats.maxDrawMs = Math.max(stats.maxDrawMs, stats.lastDrawMs);
  keep(stats.drawMs, stats.lastDrawMs);
}

function setupCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(50, canvas.clientWidth);
  const height = Math.max(50, canvas.clientHeight);
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, width, height };
}

function niceRange(lo, hi) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function ticks(lo, hi, count) {
  // a round step near (hi - lo) / count; a smaller one when that leaves fewer than 3 ticks
  // (a range of -0.0046..0.0036 mm got one tick, 0, from a step of 0.005)
  const step0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const steps = [0.2, 0.5, 1, 2, 5, 10].map((f) => f * mag);
  let i = steps.findIndex((s) => s >= step0);
  if (i < 0) i = steps.length - 1;
  let out = [];
  for (; i >= 0; i--) {
    const step = steps[i];
    out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step / 1e6 ? 0 : v);
    if (out.length >= 3) break;
  }
  return out;
}

function lineChart(canvas, xs, series, opts) {
  const { ctx, width, height } = setupCanvas(canvas);
  const left = 46, right = 10, top = 20, bottom = 20;
  const w = width - left - right, h = height - top - bottom;
  let ylo = Infinity, yhi = -Infinity;
  for (const s of series) for (const y of s.ys) if (y !== null && y !== undefined) { ylo = Math.min(ylo, y); yhi = Math.max(yhi, y); }
  if (opts.threshold != null) { ylo = Math.min(ylo, opts.threshold); yhi = Math.max(yhi, opts.threshold * 1.1); }
  if (opts.yMin !== undefined && ylo !== Infinity) ylo = Math.min(opts.yMin, ylo);
  [ylo, yhi] = niceRange(ylo === Infinity ? 0 : ylo, yhi === -Infinity ? 1 : yhi);
  if (opts.yMin !== undefined) ylo = Math.max(ylo, opts.yMin);
  const xlo = xs.length ? xs[0] : 0;
  const xhi = xs.length > 1 ? xs[xs.length - 1] : xlo + 1;
  const X = (x) => left + ((x - xlo) / (xhi - xlo || 1)) * w;
  const Y = (y) => top + (1 - (y - ylo) / (yhi - ylo)) * h;
  ctx.fillStyle = "#1d2733";
  ctx.fillText(opts.title, left, 13);
  ctx.strokeStyle = "#e3e8ee";
  ctx.fillStyle = "#6b7a89";
  ctx.lineWidth = 1;
  for (const v of ticks(ylo, yhi, 4)) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
    ctx.fillText(String(Number(v.toPrecision(3))), 4, y + 4);
  }
  for (const v of ticks(xlo, xhi, 6)) {
    ctx.fillText(String(Math.round(v)), X(v) - 6, height - 5);
  }
  if (opts.threshold != null) {
    ctx.strokeStyle = COLORS.threshold;
    ctx.setLineDash([5, 4]);
    const y = Y(opts.threshold);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = COLORS.threshold;
    ctx.fillText(`threshold ${opts.threshold}`, left + w - 90, y - 3);
  }
  let legendX = left + 170;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    for (let i = 0; i < xs.length; i++) {
      const y = s.ys[i];
      if (y === null || y === undefined) { drawing = false; continue; }
      if (drawing) ctx.lineTo(X(xs[i]), Y(y)); else { ctx.moveTo(X(xs[i]), Y(y)); drawing = true; }
    }
    ctx.stroke();
    if (series.length > 1) {
      ctx.fillStyle = s.color;
      ctx.fillRect(legendX, 6, 10, 3);
      ctx.fillText(s.label, legendX + 13, 12);
      legendX += 20 + ctx.measureText(s.label).width;
    }
  }
  ctx.lineWidth = 1;
}

// The latency chart's height: the slowest volume's, and the TR's too when it is near enough
// to compare (a 15 ms volume drawn against a 2 s TR would be a one-pixel bar).
function latencyScale(totals, trMs) {
  let slowest = 0;
  for (const t of totals) slowest = Math.max(slowest, t || 0);
  let max = Math.max(slowest * 1.15, 1);
  const trShown = Boolean(trMs) && trMs <= max * 3;
  if (trShown) max = Math.max(max, trMs * 1.15);
  return { max, trShown };
}

function latencyChart(canvas, records, tr) {
  const { ctx, width, height } = setupCanvas(canvas);
  const left = 46, right = 10, top = 20, bottom = 20;
  const w = width - left - right, h = height - top - bottom;
  const { max, trShown } = latencyScale(records.map((r) => totalMs(r.segments)), tr ? tr * 1000 : 0);
  ctx.fillStyle = "#1d2733";
  ctx.fillText("Where each volume's time went (ms)", left, 13);
  ctx.strokeStyle = "#e3e8ee";
  ctx.fillStyle = "#6b7a89";
  for (const v of ticks(0, max, 4)) {
    const y = Math.round(top + (1 - v / max) * h) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
    ctx.fillText(String(Number(v.toPrecision(3))), 4, y + 4);
  }
  const barW = w / LATENCY_BARS;
  records.forEach((r, i) => {
    let y = top + h;
    for (const [key, , color] of SEGMENTS) {
      const ms = r.segments[key];
      if (!ms) continue;
      const bh = (ms / max) * h;
      ctx.fillStyle = color;
      ctx.fillRect(left + i * barW, y - bh, Math.max(1, barW - 1), bh);
      y -= bh;
    }
  });
  if (records.length) {
    ctx.fillStyle = "#6b7a89";
    ctx.fillText(String(records[0].trId), left, height - 5);
    if (records.length > 1) {  // under its bar, but never past the chart's right edge
      const label = String(records[records.length - 1].trId);
      const x = left + (records.length - 1) * barW;
      ctx.fillText(label, Math.min(x, left + w - ctx.measureText(label).width), height - 5);
    }
  }
  if (tr && !trShown) {
    ctx.fillStyle = COLORS.tr;
    const label = `TR ${tr * 1000} ms: far above`;
    ctx.fillText(label, left + w - ctx.measureText(label).width, 13);
  }
  if (tr && trShown) {
    const y = top + (1 - (tr * 1000) / max) * h;
    ctx.strokeStyle = COLORS.tr;
    ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = COLORS.tr;
    ctx.fillText(`TR ${tr * 1000} ms`, left + w - 70, y - 3);
  }
}

// The table's rows are made once and only their text changes: a long run adds no nodes.
const segmentRows = new Map();

function latencyTable(record) {
  const table = $("q-segments");
  if (!segmentRows.size) {
    for (const [key, label, color] of [...SEGMENTS, ["total", "", null]]) {
      const row = document.createElement("tr");
      const swatch = document.createElement("td");
      if (color) {
        const box = document.createElement("i");
        box.style.background = color;
        swatch.appendChild(box);
        row.dataset.segment = key;
      } else {
        row.className = "total";
      }
      const name = document.createElement("td");
      name.textContent = label;
      const value = document.createElement("td");
      value.className = "num";
      row.append(swatch, name, value);
      table.appendChild(row);
      segmentRows.set(key, { row, name, value });
    }
  }
  for (const [key, { row, name, value }] of segmentRows) {
    if (key === "total") {
      row.hidden = !record;
      if (record) {
        name.textContent = `volume ${record.trId}: file complete -> feedback`;
        value.textContent = fmt(totalMs(record.segments), 2);
      }
      continue;
    }
    const ms = record ? record.segments[key] : null;
    row.hidden = ms === null || ms === undefined;
    if (!row.hidden) value.textContent = fmt(ms, 2);
  }
}

// ------------------------------------------------------------------ slices

const offscreen = new Map();

function decode(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function drawSlices() {
  const slices = state.slices;
  $("q-slices-title").textContent = slices ? `Volume ${slices.trId} (realigned)` : "No volume yet";
  const names = slices ? slices.rois || [] : [];
  const legend = $("q-roi-legend");
  if (legend.dataset.names !== names.join("|")) {
    legend.dataset.names = names.join("|");
    legend.textContent = "";
    names.forEach((name, i) => {
      const item = document.createElement("span");
      const c = ROI_COLORS[i % ROI_COLORS.length];
      item.style.borderColor = `rgb(${c.join(",")})`;
      item.textContent = name;
      legend.appendChild(item);
    });
  }
  for (const name of ["axial", "coronal", "sagittal"]) {
    const canvas = $(`q-${name}`);
    const view = slices && slices.views ? slices.views.find((v) => v.name === name) : null;
    const { ctx, width, height } = setupCanvas(canvas);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    if (!view) continue;
    let off = offscreen.get(name);
    if (!off) { off = document.createElement("canvas"); offscreen.set(name, off); }
    off.width = view.width;
    off.height = view.height;
    const octx = off.getContext("2d");
    const image = octx.createImageData(view.width, view.height);
    const grey = decode(view.grey);
    const outline = decode(view.outline);
    for (let i = 0; i < grey.length; i++) {
      let r = grey[i], g = grey[i], b = grey[i];
      const bits = outline[i];
      if (bits) {
        const k = 31 - Math.clz32(bits & -bits);
        [r, g, b] = ROI_COLORS[k % ROI_COLORS.length];
      }
      image.data[4 * i] = r; image.data[4 * i + 1] = g; image.data[4 * i + 2] = b; image.data[4 * i + 3] = 255;
    }
    octx.putImageData(image, 0, 0);
    // keep the real proportions (voxels are rarely square)
    const mmW = view.width * view.pixel[0];
    const mmH = view.height * view.pixel[1];
    const scale = Math.min(width / mmW, height / mmH);
    const dw = mmW * scale, dh = mmH * scale;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, (width - dw) / 2, (height - dh) / 2, dw, dh);
    ctx.fillStyle = "#9fb3c8";
    ctx.fillText(name, 4, 12);
    canvas.dataset.trId = String(slices.trId);
  }
}
