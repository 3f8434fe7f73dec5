// The experimenter page: one WebSocket (/ws/ui) carries everything (see docs/web-protocol.md).
// Server-provided text is only ever set with textContent, never parsed as HTML.

import * as quality from "./quality.js";

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  backoff: 500,
  config: null,          // last `config` message
  plot: null,            // its plot settings
  runs: new Map(),       // runId -> Map(x -> y)
  status: { state: "idle", script: null },
  configProblem: null,   // the last `configProblem` message, until a `config` replaces it
  settingsEdited: false, // the Settings form holds changes not saved yet
  editedKeys: new Set(), // which settings: Save sends only these (another tab's stay)
  logSeq: 0,             // number of the latest log line shown (the server numbers them)
  heldLines: null,       // lines that came after a (re)connect, before its logHistory
  saving: false,         // this tab asked to save and has no answer yet
};

// ------------------------------------------------------------------ tabs

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showTab(tab.dataset.tab));
}

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const pane of document.querySelectorAll(".pane")) pane.classList.toggle("active", pane.id === `pane-${name}`);
  if (name === "plots") redrawAll();
  // Lines that came while a log was hidden: show its end (unless the user had scrolled up).
  for (const log of document.querySelectorAll(`#pane-${name} .log`)) followEnd(log);
}

// ------------------------------------------------------------------ logs

// Each log follows its last line unless the user scrolled up in it; a hidden log (no
// height) keeps following, and shows its end when its tab opens.
const following = new WeakMap();

for (const log of document.querySelectorAll(".log")) {
  log.addEventListener("scroll", () => {
    if (log.clientHeight) following.set(log, log.scrollHeight - log.scrollTop - log.clientHeight < 30);
  });
}

function followEnd(el) {
  if (following.get(el) !== false) el.scrollTop = el.scrollHeight;
}

function lineClass(text, cls) {
  if (cls) return cls;
  return /^\s*(warning|warn)\b/i.test(text) ? "warn" : "";
}

// Lines are added in batches, at most every 50 ms: a script printing thousands of lines a
// second made the page lay the whole log out again for every line, and froze it (Stop
// included) for minutes. A log keeps its newest `max` lines.
const pendingLines = new Map();  // log element -> {lines: [{text, cls, stamp}], max}
let flushTimer = null;

function queueLine(el, entry, max) {
  let queued = pendingLines.get(el);
  if (!queued) pendingLines.set(el, (queued = { lines: [], max }));
  queued.lines.push(entry);
  if (queued.lines.length > 2 * max) queued.lines.splice(0, queued.lines.length - max);
  if (flushTimer === null) flushTimer = setTimeout(flushLines, 50);
}

function flushLines() {
  flushTimer = null;
  for (const [el, queued] of pendingLines) {
    const fresh = queued.lines.slice(-queued.max);
    const fragment = document.createDocumentFragment();
    for (const entry of fresh) {
      const line = document.createElement("div");
      const kind = lineClass(entry.text, entry.cls);
      if (kind) line.className = kind;
      if (entry.stamp) {
        const ts = document.createElement("span");
        ts.className = "ts";
        ts.textContent = `${entry.stamp} `;
        line.appendChild(ts);
      }
      line.appendChild(document.createTextNode(entry.text));
      fragment.appendChild(line);
    }
    el.appendChild(fragment);
    const extra = el.childElementCount - queued.max;
    if (extra > 0) {
      const range = document.createRange();
      range.setStartBefore(el.firstElementChild);
      range.setEndAfter(el.children[extra - 1]);
      range.deleteContents();
    }
    followEnd(el);
  }
  pendingLines.clear();
}

// A Run or Session log line from the server. After a (re)connect, lines are held until the
// history arrives (they may come first), so that the two merge in order.
function logLine(cmd, msg) {
  if (state.heldLines !== null) {
    state.heldLines.push([cmd, msg]);
    return;
  }
  if (Number.isInteger(msg.seq)) {
    if (msg.seq <= state.logSeq) return;
    state.logSeq = msg.seq;
  }
  appendLog($(cmd === "sessionLog" ? "session-log" : "user-log"), msg.value);
  debugLine(msg.value);
}

function clearLog(el) {
  pendingLines.delete(el);
  el.textContent = "";
}

function appendLog(el, text, cls) {
  queueLine(el, { text, cls }, 5000);
}

function debugLine(text, cls) {
  queueLine($("debug-log"), { text, cls, stamp: new Date().toLocaleTimeString() }, 10000);
}

$("clear-log").addEventListener("click", () => clearLog($("debug-log")));

// ------------------------------------------------------------------ socket

// The session ended (logged out, the password changed, or it expired): log in again.
function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/ui`);
  let opened = false;
  state.ws = ws;
  ws.onopen = () => {
    opened = true;
    state.backoff = 500;
    setIndicator("ind-browser", "on", "browser: connected");
    state.heldLines = [];  // until the logHistory that getState brings
    send({ cmd: "getState" });
  };
  ws.onclose = (event) => {
    setIndicator("ind-browser", "", "browser: disconnected");
    setIndicator("ind-data", "", "data: unknown");
    setIndicator("ind-subject", "", "subject: unknown");
    if (event.code === 4401) { toLogin(); return; }
    if (!opened) {
      // refused before it opened: the server is down, or this browser's session is gone
      fetch("/api/session", { cache: "no-store", redirect: "manual" })
        .then((response) => { if (response.status === 401) toLogin(); })
        .catch(() => {});  // the server does not answer: keep retrying
    }
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 5000);
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { debugLine(`unreadable message from server`, "err"); return; }
    const handler = handlers[msg.cmd];
    if (handler) handler(msg);
    else debugLine(`unknown message from server: ${msg.cmd}`, "err");
  };
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(message));
    return true;
  }
  $("run-error").textContent = "Not connected to the server.";
  return false;
}

function setIndicator(id, cls, title) {
  const el = $(id);
  el.classList.remove("on", "local", "warn");
  if (cls) el.classList.add(cls);
  el.title = title;
  el.dataset.state = cls || "off";
}

// ------------------------------------------------------------------ server messages

const handlers = {
  hello(msg) {
    $("project").textContent = `project ${msg.project}`;
    $("user").textContent = msg.user;
    if (msg.title) setTitle(msg.title);
    $("replay-note").textContent = msg.replay || "";
    $("replay-note").hidden = !msg.replay;
  },
  config(msg) {
    showConfigProblem(null);
    const previous = state.config;
    state.config = msg;
    state.plot = msg.plot;
    setTitle(msg.title || "Real-Time Study");
    $("config-file").textContent = msg.filename;
    $("config-header").textContent = msg.header || "";
    // Run # and Scan # as typed survive a reconnect and another tab's save: they follow
    // the file only when its own runNum/scanNum change
    const runs = (msg.runNum || []).join(",");
    const scans = (msg.scanNum || []).join(",");
    if (!previous || (previous.runNum || []).join(",") !== runs) $("run-num").value = runs;
    if (!previous || (previous.scanNum || []).join(",") !== scans) $("scan-num").value = scans;
    const items = Object.fromEntries(msg.items.map((i) => [i.key, i.value]));
    const info = [];
    if (items.subjectNum !== undefined) info.push(`subjectNum: ${items.subjectNum}`);
    if (items.subjectDay !== undefined) info.push(`subjectDay: ${items.subjectDay}`);
    $("subject-info").textContent = info.join("   ");
    $("plot-title").textContent = msg.plot.title || "Plots";
    if (!state.settingsEdited) {
      buildSettings(msg.items);
    } else if (previous && JSON.stringify(previous.items) !== JSON.stringify(msg.items)) {
      const el = $("settings-message");
      el.className = "bad";
      el.textContent =
        "The settings file changed (saved elsewhere). Your unsaved edits are kept: Save to " +
        "write them over it, or Reset to see the file.";
    }
    redrawAll();
  },
  configProblem(msg) {
    $("config-file").textContent = msg.filename;
    showConfigProblem(msg);
    debugLine(`config problem: ${msg.error}`, "err");
  },
  configSaved() {
    if (!state.saving) return;  // another tab saved: its config follows
    state.saving = false;
    state.settingsEdited = false;
    state.editedKeys.clear();
    if (state.config) buildSettings(state.config.items);
    const el = $("settings-message");
    el.className = "ok";
    el.textContent = "Saved.";
  },
  configError(msg) {
    if (!state.saving) return;
    state.saving = false;
    const el = $("settings-message");
    el.className = "bad";
    el.textContent = "Not saved: " + Object.entries(msg.errors).map(([k, v]) => `${k} ${v}`).join("; ");
    for (const [key, text] of Object.entries(msg.errors)) {
      const err = document.querySelector(`[data-error-for="${CSS.escape(key)}"]`);
      if (err) err.textContent = text;
      const input = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (input) input.classList.add("invalid");
    }
  },
  runStatus(msg) {
    if (typeof msg.status === "string") {  // webInterface.sendRunStatus(text) from a script
      progress.scriptText = true;  // it stands until the run ends
      showProgress(msg.status, null, null);
      return;
    }
    const starting = msg.state === "running" && state.status.state !== "running";
    state.status = msg;
    if (starting && msg.script === "mainScript") startProgress();
    // A failure's cause goes to the error line (userError), once; the status says what failed.
    const text = msg.state === "failed"
      ? `${msg.script} failed (exit status ${msg.exitCode})`
      : msg.message || msg.state;
    const isMain = msg.script === "mainScript" || msg.script === null;
    for (const id of isMain ? ["run-status"] : ["session-status"]) {
      const el = $(id);
      el.textContent = text;
      el.className = `status ${msg.state}`;
      el.dataset.state = msg.state;
    }
    updateButtons();
    debugLine(`status: ${text}`);
  },
  connStatus(msg) {
    const d = msg.data;
    if (!d.remote) setIndicator("ind-data", "local", "data: served inside the server");
    else setIndicator("ind-data", d.connected ? "on" : "", `data service: ${d.connected ? "connected" : "disconnected"}`);
    // The subject side may have several presentation peers at once (service, pages, clients).
    const s = msg.subject;
    const peers = s.peers || [];
    const label = $("ind-subject-label");
    if (label) label.textContent = (peers.length ? `subject (${peers.length})` : "subject") + (s.waiting ? ` ${s.waiting} waiting` : "");
    const who = peers.length ? `: ${peers.join(", ")}` : "";
    const kept = s.waiting ? `; ${s.waiting} result(s) kept for absent peers, delivered late when they reconnect` : "";
    if (s.waiting) setIndicator("ind-subject", "warn", `subject: ${peers.length} feedback peer(s) connected${who}${kept}`);
    else if (peers.length) setIndicator("ind-subject", "on", `subject: ${peers.length} feedback peer(s) connected${who}`);
    else if (!s.remote) setIndicator("ind-subject", "local", "subject: kept in the server (no feedback peer connected)");
    else setIndicator("ind-subject", "", "subject: no subject service or feedback page connected");
  },
  userLog(msg) { logLine("userLog", msg); },
  sessionLog(msg) { logLine("sessionLog", msg); },
  // The logs' latest lines, sent when this page (re)connects: those it missed while away
  // (or all of them, for a page opened mid-run), merged with the lines that came live
  // meanwhile (those may arrive before the history), in order.
  logHistory(msg) {
    const lines = new Map();
    for (const [cmd, entries] of Object.entries(msg.logs || {})) {
      for (const [seq, text] of entries) lines.set(seq, [cmd, text, false]);
    }
    for (const [cmd, live] of state.heldLines) {
      if (Number.isInteger(live.seq)) lines.set(live.seq, [cmd, live.value, true]);
    }
    state.heldLines = null;
    const order = [...lines.keys()].filter((seq) => seq > state.logSeq).sort((a, b) => a - b);
    if (state.logSeq > 0 && order.length && order[0] > state.logSeq + 1) {
      appendLog($("user-log"), "(rtcloud: some lines printed while this page was away are not kept)", "warn");
    }
    for (const seq of order) {
      const [cmd, text, live] = lines.get(seq);
      appendLog($(cmd === "sessionLog" ? "session-log" : "user-log"), text);
      if (live) debugLine(text);
    }
    if (order.length) state.logSeq = Math.max(state.logSeq, order[order.length - 1]);
  },
  debugLog(msg) { debugLine(msg.value); },
  userError(msg) {
    // a session script's failure goes to the Session tab (it stayed on the Run tab)
    const session = msg.script === "initScript" || msg.script === "finalizeScript";
    $(session ? "session-error" : "run-error").textContent = msg.error;
    debugLine(`error: ${msg.error}`, "err");
  },
  debugError(msg) { debugLine(`error: ${msg.error}`, "err"); },
  plotDataPoint(msg) {
    if (msg.trId === null || msg.trId === undefined) {
      state.runs.delete(msg.runId);
    } else {
      if (!state.runs.has(msg.runId)) state.runs.set(msg.runId, new Map());
      state.runs.get(msg.runId).set(msg.trId, msg.value);
      countProgress(msg.runId, msg.trId);
    }
    schedulePlot(msg.runId);
  },
  setDataPoints(msg) {
    state.runs.clear();
    msg.value.forEach((points, index) => {
      if (points.length) state.runs.set(index + 1, new Map(points.map((p) => [p.x, p.y])));
    });
    redrawAll();
  },
  uploadStatus(msg) { debugLine(`file: ${msg.file}`); },
  ...quality.handlers,
};

function updateButtons() {
  const running = state.status.state === "running" || state.status.state === "stopping";
  const broken = Boolean(state.configProblem);
  $("run-button").disabled = running || broken;
  $("init-button").disabled = running || broken;
  $("finalize-button").disabled = running || broken;
  $("save-settings").disabled = broken;
  // each tab's Stop stops what that tab started (its status says what runs)
  const script = state.status.script;
  const mainRuns = running && (script === "mainScript" || script === null || script === undefined);
  $("stop-button").disabled = !mainRuns;
  $("session-stop-button").disabled = !running || mainRuns;
}

// A config file that cannot be used is shown where the user looks (Run and Settings), until
// the server sends the fixed file's `config`.
function showConfigProblem(problem) {
  state.configProblem = problem;
  for (const el of document.querySelectorAll(".config-problem")) {
    el.hidden = !problem;
    const text = problem ? problem.error.charAt(0).toUpperCase() + problem.error.slice(1) : "";
    el.textContent = problem
      ? `${text}. Fix the file in your editor: this page picks it up as soon as it is saved.`
      : "";
  }
  $("settings-form").classList.toggle("stale", Boolean(problem));
  updateButtons();
}

function setTitle(text) {
  $("title").textContent = text;
  document.title = `${text} - rtcloud`;
}

// ------------------------------------------------------------------ run and session

function parseNumbers(text) {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s.length);
  if (!parts.length || parts.some((p) => !/^\d+$/.test(p))) return null;
  return parts.map(Number);
}

$("run-button").addEventListener("click", () => {
  const runs = parseNumbers($("run-num").value);
  const scans = parseNumbers($("scan-num").value);
  $("run-num").classList.toggle("invalid", !runs);
  $("scan-num").classList.toggle("invalid", !scans);
  if (!runs || !scans) {
    $("run-error").textContent = "Run # and Scan # must be whole numbers, separated by commas.";
    return;
  }
  if (state.settingsEdited) {
    $("run-error").textContent =
      "The Settings tab has changes that are not saved: Save them (the script reads the " +
      "saved file) or Reset them, then Run.";
    return;
  }
  if (send({ cmd: "runScript", script: "mainScript", runNum: runs, scanNum: scans })) {
    $("run-error").textContent = "";
    clearLog($("user-log"));
  }
});
$("stop-button").addEventListener("click", () => send({ cmd: "stop" }));
$("session-stop-button").addEventListener("click", () => send({ cmd: "stop" }));
// Initialize and Finalize share the Session log: each run starts under its own heading, and
// Finalize does not wipe what Initialize printed.
function sessionScript(script, label) {
  if (send({ cmd: "runScript", script })) {
    $("session-error").textContent = "";
    appendLog($("session-log"), `----- ${label} (${new Date().toLocaleTimeString()}) -----`, "heading");
  }
}
$("init-button").addEventListener("click", () => sessionScript("initScript", "Initialize Session"));
$("finalize-button").addEventListener("click", () => sessionScript("finalizeScript", "Finalize Session"));

// ------------------------------------------------------------------ run progress

// "Run 1: TR k of N" while the main script runs: k counts the volumes of the run plotted
// since this start (points left from an earlier run of the same number do not count), N is
// the config's numVolumes when it has one. A script's own sendRunStatus text replaces it
// until the run ends.
const progress = { runId: null, counted: new Map(), scriptText: false };

function startProgress() {
  progress.runId = null;
  progress.counted = new Map();
  progress.scriptText = false;
  showProgress("", null, null);
}

function configNumber(key) {
  const item = state.config && state.config.items.find((i) => i.key === key);
  return item && item.type === "int" && item.value > 0 ? item.value : null;
}

function countProgress(runId, trId) {
  if (state.status.state !== "running" || state.status.script !== "mainScript") return;
  progress.runId = runId;
  if (!progress.counted.has(runId)) progress.counted.set(runId, new Set());
  progress.counted.get(runId).add(trId);
  if (progress.scriptText) return;
  const done = progress.counted.get(runId).size;
  const total = configNumber("numVolumes");
  const text = total ? `Run ${runId}: TR ${done} of ${total}` : `Run ${runId}: TR ${done}`;
  showProgress(text, done, total);
}

function showProgress(text, done, total) {
  $("run-progress-text").textContent = text;
  const bar = $("run-progress-bar");
  bar.hidden = !total;
  if (total) {
    bar.max = total;
    bar.value = Math.min(done, total);
  }
}

// ------------------------------------------------------------------ settings

function buildSettings(items) {
  const form = $("settings-form");
  form.textContent = "";
  let target = form;
  for (const item of items) {
    if (item.key === "advancedOptionDemarcation") {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "Advanced options";
      details.appendChild(summary);
      const grid = document.createElement("div");
      grid.id = "advanced-settings";
      grid.className = "settings-grid";
      details.appendChild(grid);
      form.appendChild(details);
      target = grid;
      continue;
    }
    // A comment block above settings in the file heads them all, up to a blank line.
    const starts = item.group !== null && item.group !== undefined;
    if (starts && (item.group || target.childElementCount)) {
      const heading = document.createElement("div");
      heading.className = item.group ? "group" : "group gap";
      heading.textContent = item.group;
      target.appendChild(heading);
    }
    const label = document.createElement("label");
    label.className = "key";
    label.textContent = item.key;
    const input = makeInput(item);
    input.id = `setting-${item.key}`;
    label.htmlFor = input.id;
    const help = document.createElement("span");
    help.className = "help";
    help.textContent = item.comment || "";
    const err = document.createElement("div");
    err.className = "fielderr";
    err.dataset.errorFor = item.key;
    help.appendChild(err);
    target.append(label, input, help);
  }
}

function makeInput(item) {
  let input;
  if (item.type === "table") {
    input = document.createElement("pre");
    input.textContent = JSON.stringify(item.value, null, 1);
    input.dataset.readonly = "1";
  } else {
    input = document.createElement("input");
    if (item.type === "bool") {
      input.type = "checkbox";
      input.checked = Boolean(item.value);
    } else if (item.type === "int" || item.type === "float") {
      input.type = "number";
      input.step = item.type === "int" ? "1" : "any";
      input.value = String(item.value);
    } else if (item.type === "list") {
      // Plain lists are edited as "a, b, c"; lists of lists or tables, mixed lists and
      // texts holding commas as JSON.
      const plain = item.itemType && !["list", "table"].includes(item.itemType) &&
        !(item.itemType === "str" && item.value.some((v) => v.includes(",")));
      const json = item.value.length > 0 && !plain;
      input.value = json ? JSON.stringify(item.value) : item.value.join(", ");
      input.dataset.json = json ? "1" : "";
      input.dataset.itemType = item.itemType || "";
    } else {
      input.value = String(item.value);
    }
  }
  input.dataset.key = item.key;
  input.dataset.type = item.type;
  input.addEventListener?.("input", () => input.classList.remove("invalid"));
  return input;
}

function readSetting(input) {
  const type = input.dataset.type;
  if (type === "bool") return input.checked;
  if (type === "int" || type === "float") {
    const text = input.value.trim();
    if (text === "" || Number.isNaN(Number(text))) return text;  // the server refuses it
    return Number(text);
  }
  if (type === "list") {
    if (input.dataset.json) {
      try { return JSON.parse(input.value); } catch { return input.value; }
    }
    const parts = input.value.split(",").map((s) => s.trim()).filter((s) => s.length);
    const kind = input.dataset.itemType;
    // Each element as the file's elements are typed; what does not fit is sent as text,
    // and the server refuses it naming the setting.
    if (kind === "str") return parts;
    if (kind === "bool") return parts.map((p) => (p === "true" ? true : p === "false" ? false : p));
    return parts.map((p) => (Number.isNaN(Number(p)) ? p : Number(p)));
  }
  return input.value;
}

$("save-settings").addEventListener("click", (event) => {
  event.preventDefault();
  for (const el of document.querySelectorAll(".fielderr")) el.textContent = "";
  const values = {};
  for (const input of document.querySelectorAll("#settings-form [data-key]")) {
    if (input.dataset.readonly || !state.editedKeys.has(input.dataset.key)) continue;
    values[input.dataset.key] = readSetting(input);
  }
  $("settings-message").className = "";
  $("settings-message").textContent = "Saving ...";
  state.saving = send({ cmd: "saveConfig", values });
});
$("reset-settings").addEventListener("click", (event) => {
  event.preventDefault();
  $("settings-message").textContent = "";
  state.settingsEdited = false;
  state.editedKeys.clear();
  if (state.config) buildSettings(state.config.items);
});
$("settings-form").addEventListener("input", (event) => {
  const key = event.target.closest("[data-key]")?.dataset.key;
  if (key === undefined) return;
  state.settingsEdited = true;
  state.editedKeys.add(key);
});
$("settings-form").addEventListener("submit", (event) => event.preventDefault());

// ------------------------------------------------------------------ plots

const pending = new Set();
function schedulePlot(runId) {
  pending.add(runId);
  requestAnimationFrame(() => {
    for (const id of pending) drawRun(id);
    pending.clear();
  });
}

function redrawAll() {
  const box = $("plots");
  for (const el of [...box.querySelectorAll(".plot")]) {
    const runId = Number(el.dataset.run);
    if (!state.runs.has(runId)) {
      if (window.Plotly) Plotly.purge(el);
      el.remove();
    }
  }
  for (const runId of state.runs.keys()) drawRun(runId);
  $("no-plots").style.display = state.runs.size ? "none" : "";
}

function drawRun(runId) {
  const box = $("plots");
  let el = $(`plot-run-${runId}`);
  const points = state.runs.get(runId);
  if (!points) {
    if (el) { if (window.Plotly) Plotly.purge(el); el.remove(); }
    $("no-plots").style.display = state.runs.size ? "none" : "";
    return;
  }
  if (!el) {
    el = document.createElement("div");
    el.className = "plot";
    el.id = `plot-run-${runId}`;
    el.dataset.run = String(runId);
    el.dataset.testid = `plot-run-${runId}`;
    const after = [...box.querySelectorAll(".plot")].find((p) => Number(p.dataset.run) > runId);
    box.insertBefore(el, after || null);
  }
  $("no-plots").style.display = "none";
  const xs = [...points.keys()].sort((a, b) => a - b);
  const ys = xs.map((x) => points.get(x));
  el.dataset.points = String(xs.length);
  if (!window.Plotly || !$("pane-plots").classList.contains("active")) return;
  const plot = state.plot || {};
  const layout = {
    title: { text: `Run ${runId}`, font: { size: 14 } },
    margin: { l: 60, r: 20, t: 36, b: 44 },
    xaxis: { title: { text: plot.xLabel || "TR #" }, autorange: !plot.xRange, range: plot.xRange || undefined },
    yaxis: { title: { text: plot.yLabel || "Value" }, autorange: !plot.yRange, range: plot.yRange || undefined },
  };
  // Volume numbers are whole: no "0.5" ticks on a short run.
  if (xs.every(Number.isInteger)) {
    layout.xaxis.tickformat = "d";
    if (xs[xs.length - 1] - xs[0] < 12) layout.xaxis.dtick = 1;
  }
  Plotly.react(el, [{ x: xs, y: ys, mode: "lines+markers", line: { color: "#2f6fb0" }, name: `run ${runId}` }],
    layout, { responsive: true, displaylogo: false });
}

$("clear-plots").addEventListener("click", () => send({ cmd: "clearPlots" }));

// plotly.js (about 5 MB) loads on its own: the page connects and works without waiting for
// it, and draws the plots once it is there.
if (!window.Plotly) $("plotly-js").addEventListener("load", () => redrawAll());

quality.init({ send });
connect();
