// rtcloud-feedback.js: the browser end of rtcloud's feedback socket (/ws/feedback).
//
// A classic script (no build step, no dependencies) that defines one global, RtcloudFeedback:
//
//   <script src="/static/rtcloud-feedback.js"></script>
//   const client = RtcloudFeedback.shared();           // one connection per page
//   client.on("result", (r) => draw(r.value));         // at each result's onset, in order
//   client.on("message", (text) => show(text));         // subjInterface.setMessage(text)
//   client.sendResponse(r.runId, r.trId, { key: "f", rt: 512 });   // -> getResponse(run, tr)
//
// What it does (protocol: docs/feedback-page.md):
// - connects to ws(s)://<this host>/ws/feedback (the page must come from the rtcloud server:
//   the socket needs its login cookie), reconnects with backoff after a drop, and says so in
//   the console and through "status" events; when the login is missing it says so too;
// - acknowledges every delivery the moment it arrives (the server counts a result as
//   delivered then), then shows each result onsetTimeDelayMs after its arrival;
// - does not show a result marked late (kept by the server while this page was away): it is
//   acknowledged and handed to "late" listeners only, so the participant never sees stale
//   feedback;
//   results are queued in arrival order, so one arriving during another's delay never makes
//   the earlier one vanish unseen (each is shown for at least minShowMs before the next);
// - records the timing of every result shown: arrival and display as Date.now() ms and as
//   performance.now() ms, the measured delay, and how late the display was (client.shown);
// - sends the participant's responses, keeping them while disconnected.
//
// Two ways to take results: events (client.on("result", fn), as /feedback does) or pulling
// (await client.next(), as the jsPsych plugin does). A page uses one of them.
//
// Display draws a value as a bar or a circle over a fixed or automatic range (used by both
// /feedback and the jsPsych plugin); StatusBadge shows the connection state. Text from the
// server is only ever set with textContent: nothing is parsed as HTML, nothing is evaluated.

(function (root) {
  "use strict";

  const VERSION = "1.0.0";
  const RETRY_FIRST_MS = 500;
  const RETRY_MAX_MS = 5000;
  const KEEP_RECORDS = 10000;
  const KEEP_UNSENT = 1000;
  const KINDS = new Set(["result", "resultDict", "message"]);

  const now = () => performance.now();

  // This tab, across reloads and reconnections: the server keeps what a tab missed by it
  // (two tabs on one computer under one login are two peers, not one).
  function tabInstance() {
    try {
      let id = sessionStorage.getItem("rtcloud-feedback-instance");
      if (!id) {
        id = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
        sessionStorage.setItem("rtcloud-feedback-instance", id);
      }
      return id;
    } catch (e) {
      return "";  // storage refused: the server tells this tab by its user and host only
    }
  }

  function defaultUrl() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws/feedback?instance=${tabInstance()}`;
  }

  function loginUrl() {
    return `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  }

  function log(level, text) {
    const fn = console[level] || console.log;
    fn.call(console, `rtcloud feedback: ${text}`);
  }

  // A promise that can be withdrawn: cancel() resolves it with null.
  function cancellable(executor, onCancel) {
    let settle = null;
    const promise = new Promise((resolve) => {
      settle = resolve;
      executor(resolve);
    });
    promise.cancel = () => {
      onCancel();
      settle(null);
    };
    return promise;
  }

  // A message's onsetTimeDelayMs as a number of milliseconds >= 0 (0 when missing or bad).
  function onsetDelay(msg) {
    const delay = Number(msg.onsetTimeDelayMs);
    return Number.isFinite(delay) && delay > 0 ? delay : 0;
  }

  // ---------------------------------------------------------------- events

  class Emitter {
    constructor() {
      this._listeners = new Map();
    }

    // Listen to an event; returns a function that stops listening.
    on(type, listener) {
      if (!this._listeners.has(type)) this._listeners.set(type, new Set());
      this._listeners.get(type).add(listener);
      this._listened(type);
      return () => this.off(type, listener);
    }

    off(type, listener) {
      const set = this._listeners.get(type);
      if (set) set.delete(listener);
    }

    listenerCount(type) {
      const set = this._listeners.get(type);
      return set ? set.size : 0;
    }

    _listened(type) {}

    emit(type, ...args) {
      const set = this._listeners.get(type);
      if (!set) return;
      for (const listener of [...set]) {
        try {
          listener(...args);
        } catch (err) {
          // one broken listener must not stop the others (or the socket)
          console.error(`rtcloud feedback: a "${type}" listener failed:`, err);
        }
      }
    }
  }

  // ---------------------------------------------------------------- the client

  class FeedbackClient extends Emitter {
    // options: url (default: this host's /ws/feedback), minShowMs (default 100),
    // messageHoldMs (default 1000), autoConnect (default true).
    constructor(options = {}) {
      super();
      this.url = options.url || defaultUrl();
      this.minShowMs = Number.isFinite(options.minShowMs) ? Math.max(0, options.minShowMs) : 100;
      // A message (it replaces the feedback on screen) waits until the results that came
      // before it have been up this long: scripts send "End run" right after the last
      // result, which was otherwise shown for a few milliseconds.
      this.messageHoldMs = Number.isFinite(options.messageHoldMs)
        ? Math.max(0, options.messageHoldMs) : 1000;
      this.status = "idle";      // idle | connecting | open | reconnecting | unauthorized | closed
      this.message = "";         // the current message (setMessage)
      this.shown = [];           // a record per result shown, oldest first
      this.dicts = [];           // a record per result dict delivered
      this.late = [];            // results kept while this page was away: never shown
      this.received = 0;         // deliveries acknowledged
      this.connects = 0;         // successful connections (> 1 after a reconnect)
      this._ws = null;
      this._retryMs = RETRY_FIRST_MS;
      this._retryTimer = null;
      this._closed = false;
      this._queue = [];          // results arrived and not yet shown
      this._waiters = [];        // next() calls waiting for a result
      this._dueWaiters = [];     // nextDue() calls
      this._timer = null;
      this._lastShownPerf = -Infinity;
      this._unsent = [];         // responses waiting for the connection
      this._pumping = false;
      if (options.autoConnect !== false) this.connect();
    }

    get connected() {
      return this.status === "open";
    }

    get queued() {
      return this._queue.length;
    }

    connect() {
      this._closed = false;
      if (this._ws) return;
      // (while the login is missing, keep saying so rather than flicker at every try)
      if (this.status !== "unauthorized") this._setStatus(this.connects ? "reconnecting" : "connecting");
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        log("error", `cannot open ${this.url}: ${err.message}`);
        this._scheduleRetry(false);
        return;
      }
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.connects += 1;
        this._retryMs = RETRY_FIRST_MS;
        log("info", this.connects > 1 ? "connected again" : "connected");
        this._setStatus("open");
        this._flushResponses();
      };
      ws.onmessage = (event) => this._onFrame(event.data);
      ws.onclose = (event) => {
        if (this._ws === ws) this._ws = null;
        if (this._closed) {
          this._setStatus("closed");
          return;
        }
        this._scheduleRetry(opened, event.code);
      };
    }

    // Close for good (no reconnect).
    close() {
      this._closed = true;
      clearTimeout(this._retryTimer);
      if (this._ws) this._ws.close(1000, "page closed");
      this._setStatus("closed");
    }

    _setStatus(status, detail = {}) {
      this.status = status;
      this.emit("status", status, detail);
    }

    _scheduleRetry(wasOpen, code) {
      const wait = this._retryMs;
      this._retryMs = Math.min(this._retryMs * 2, RETRY_MAX_MS);
      this._retryTimer = setTimeout(() => this.connect(), wait);
      if (wasOpen) {
        log("warn", `connection lost (code ${code}); reconnecting in ${(wait / 1000).toFixed(1)} s`);
        this._setStatus("reconnecting", { retryMs: wait });
        return;
      }
      // Refused before it opened: not logged in (any more), or the server is down.
      fetch("/api/session", { credentials: "same-origin", cache: "no-store", redirect: "manual" })
        .then((response) => {
          if (this._closed || this.status === "open") return;
          if (response.status === 401) {
            log("warn", `not logged in: log in at ${location.origin}/login first (retrying)`);
            this._setStatus("unauthorized", { retryMs: wait, loginUrl: loginUrl() });
          } else {
            log("warn", `cannot connect; retrying in ${(wait / 1000).toFixed(1)} s`);
            this._setStatus("reconnecting", { retryMs: wait });
          }
        })
        .catch(() => {
          if (this._closed || this.status === "open") return;
          log("warn", `the server does not answer; retrying in ${(wait / 1000).toFixed(1)} s`);
          this._setStatus("reconnecting", { retryMs: wait, serverDown: true });
        });
    }

    _send(message) {
      if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
      this._ws.send(JSON.stringify(message));
      return true;
    }

    _onFrame(text) {
      const arrivalPerf = now();
      const arrivalTime = Date.now();
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        log("error", "unreadable message from the server");
        return;
      }
      if (!msg || typeof msg !== "object") return;
      const hasId = Number.isInteger(msg.id);
      // Acknowledge first: the script's call returns when every page has it.
      if (hasId) {
        if (KINDS.has(msg.type)) this._send({ type: "ack", id: msg.id });
        else this._send({ type: "error", id: msg.id, error: `unknown message type ${String(msg.type).slice(0, 40)}` });
      }
      if (hasId) this.received += 1;
      switch (msg.type) {
        case "hello": {
          const text = typeof msg.message === "string" ? msg.message : "";
          this.emit("hello", msg);
          if (text !== this.message) {
            this.message = text;
            this.emit("message", text, { source: "hello", arrivalTime, arrivalPerf });
          }
          break;
        }
        case "message": {
          const text = typeof msg.text === "string" ? msg.text : String(msg.text);
          // after the results that came before it have been up messageHoldMs
          let showAt = this._lastShownPerf;
          for (const result of this._queue) showAt = Math.max(showAt, result.duePerf);
          const wait = showAt + this.messageHoldMs - arrivalPerf;
          const show = () => {
            this.message = text;
            this.emit("message", text, { source: "message", arrivalTime, arrivalPerf });
          };
          if (wait > 0 && Number.isFinite(wait)) setTimeout(show, wait);
          else show();
          break;
        }
        case "result":
          this._arrived(msg, arrivalTime, arrivalPerf);
          break;
        case "resultDict":
          this._arrivedDict(msg, arrivalTime, arrivalPerf);
          break;
        case "refused":
          log("warn", `the server refused a message: ${msg.error}`);
          this.emit("refused", msg.error);
          break;
        default:
          log("warn", `unknown message from the server: ${String(msg.type).slice(0, 40)}`);
      }
    }

    _arrived(msg, arrivalTime, arrivalPerf) {
      const onsetTimeDelayMs = onsetDelay(msg);
      const result = {
        id: msg.id,
        runId: msg.runId,
        trId: msg.trId,
        value: msg.value,
        onsetTimeDelayMs,
        arrivalTime,            // Date.now() when it arrived
        arrivalPerf,            // performance.now() when it arrived
        duePerf: arrivalPerf + onsetTimeDelayMs,
        displayTime: null,      // Date.now() when shown
        displayPerf: null,      // performance.now() when shown
        delayMs: null,          // displayPerf - arrivalPerf: the onset delay as measured
        lateMs: null,           // displayPerf - duePerf: > 0 when shown later than asked
        queuedBehind: this._queue.length,   // results still waiting when it arrived
        framePerf: null,        // performance.now() in the first animation frame after display
      };
      if (msg.late === true) {   // kept while this page was away: never shown as live
        result.late = true;
        this._keepLate(result);
        return;
      }
      this._queue.push(result);
      this.emit("arrive", result);
      this._service();
    }

    _keepLate(record) {
      this.late.push(record);
      if (this.late.length > KEEP_RECORDS) this.late.shift();
      this.emit("late", record);
    }

    _arrivedDict(msg, arrivalTime, arrivalPerf) {
      const onsetTimeDelayMs = onsetDelay(msg);
      const record = {
        id: msg.id,
        name: msg.name,
        values: msg.values,
        onsetTimeDelayMs,
        arrivalTime,
        arrivalPerf,
        displayTime: null,
        displayPerf: null,
        delayMs: null,
      };
      if (msg.late === true) {
        record.late = true;
        this._keepLate(record);
        return;
      }
      this.emit("arriveDict", record);
      setTimeout(() => {
        record.displayPerf = now();
        record.displayTime = Date.now();
        record.delayMs = record.displayPerf - arrivalPerf;
        this.dicts.push(record);
        if (this.dicts.length > KEEP_RECORDS) this.dicts.shift();
        this.emit("resultDict", record);
      }, Math.max(0, arrivalPerf + onsetTimeDelayMs - now()));
    }

    // When the head of the queue may be shown: its onset, and not before the previous
    // result has been up for minShowMs.
    _headReadyPerf() {
      const head = this._queue[0];
      return Math.max(head.duePerf, this._lastShownPerf + this.minShowMs);
    }

    _service() {
      clearTimeout(this._timer);
      this._timer = null;
      if (!this._queue.length) return;
      const ready = this._headReadyPerf();
      const wait = ready - now();
      if (wait > 0) {
        if (this._waiters.length || this._dueWaiters.length) {
          this._timer = setTimeout(() => this._service(), wait);
        }
        return;
      }
      const due = this._dueWaiters.splice(0);
      for (const resolve of due) resolve(this._queue[0]);
      if (this._waiters.length) {
        const resolve = this._waiters.shift();
        resolve(this._handOut());
        this._service();
      }
    }

    _handOut() {
      const result = this._queue.shift();
      result.displayPerf = now();
      result.displayTime = Date.now();
      result.delayMs = result.displayPerf - result.arrivalPerf;
      result.lateMs = result.displayPerf - result.duePerf;
      this._lastShownPerf = result.displayPerf;
      this.shown.push(result);
      if (this.shown.length > KEEP_RECORDS) this.shown.shift();
      requestAnimationFrame(() => {
        result.framePerf = now();
      });
      return result;
    }

    // The next result, at its onset (at once if that has passed). The promise has cancel(),
    // which withdraws the request (the promise then resolves with null).
    next() {
      return this._wait("_waiters");
    }

    // Resolves (with that result, without taking it) when the next result may be shown.
    nextDue() {
      return this._wait("_dueWaiters");
    }

    // A cancellable promise resolved by _service() through the waiter list this[list].
    _wait(list) {
      let mine = null;
      return cancellable(
        (resolve) => {
          mine = resolve;
          this[list].push(resolve);
          this._service();
        },
        () => {
          this[list] = this[list].filter((w) => w !== mine);
        },
      );
    }

    // Listening to "result" starts taking results off the queue at their onsets.
    _listened(type) {
      if (type !== "result" || this._pumping) return;
      this._pumping = true;
      const pump = () => {
        this.next().then((result) => {
          if (!result) return;
          this.emit("result", result);
          pump();
        });
      };
      pump();
    }

    // Send a response of the participant for volume (runId, trId). Returns true when sent
    // now, false when kept until the connection is back.
    sendResponse(runId, trId, response) {
      for (const [what, id] of [["runId", runId], ["trId", trId]]) {
        if (!(typeof id === "string" || Number.isInteger(id))) {
          throw new TypeError(`sendResponse: ${what} must be a whole number or text, got ${id}`);
        }
      }
      if (!response || typeof response !== "object" || Array.isArray(response)) {
        throw new TypeError("sendResponse: the response must be an object");
      }
      const message = { type: "response", runId, trId, response };
      if (this._send(message)) return true;
      this._unsent.push(message);
      if (this._unsent.length > KEEP_UNSENT) this._unsent.shift();
      log("warn", `not connected: response for run ${runId} volume ${trId} kept until reconnected`);
      return false;
    }

    _flushResponses() {
      while (this._unsent.length && this._send(this._unsent[0])) this._unsent.shift();
    }
  }

  let sharedClient = null;

  // The page's one connection (created on first use with these options).
  function shared(options) {
    if (!sharedClient) sharedClient = new FeedbackClient(options);
    return sharedClient;
  }

  // ---------------------------------------------------------------- drawing

  // Maps values onto 0..1 over a fixed range, or over the values seen so far.
  class ValueRange {
    constructor(min = null, max = null) {
      this.fixedMin = Number.isFinite(min) ? min : null;
      this.fixedMax = Number.isFinite(max) ? max : null;
      this.seenMin = Infinity;
      this.seenMax = -Infinity;
    }

    get auto() {
      return this.fixedMin === null || this.fixedMax === null;
    }

    see(value) {
      if (!Number.isFinite(value)) return;
      this.seenMin = Math.min(this.seenMin, value);
      this.seenMax = Math.max(this.seenMax, value);
    }

    bounds() {
      const lo = this.fixedMin !== null ? this.fixedMin : this.seenMin;
      const hi = this.fixedMax !== null ? this.fixedMax : this.seenMax;
      return [lo, hi];
    }

    // { fraction: 0..1, clamped: -1 (below), 0, 1 (above) } for a finite value.
    place(value) {
      const [lo, hi] = this.bounds();
      if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi <= lo) {
        // one value seen (or a degenerate range): the middle, or the side it is on
        if (Number.isFinite(lo) && Number.isFinite(hi) && value !== lo) {
          return value < lo ? { fraction: 0, clamped: -1 } : { fraction: 1, clamped: 1 };
        }
        return { fraction: 0.5, clamped: 0 };
      }
      // computed in two steps so that huge ranges do not overflow to Infinity
      const fraction = value / (hi - lo) - lo / (hi - lo);
      if (fraction < 0) return { fraction: 0, clamped: -1 };
      if (fraction > 1) return { fraction: 1, clamped: 1 };
      return { fraction, clamped: 0 };
    }
  }

  // A result's value as a number: numbers, booleans and numeric text; else NaN.
  function toNumber(value) {
    if (typeof value === "number") return value;
    if (typeof value === "boolean") return value ? 1 : 0;
    if (typeof value === "string" && value.trim() !== "") return Number(value);
    return NaN;
  }

  function formatValue(value) {
    if (value === 0) return "0";
    const size = Math.abs(value);
    if (size >= 1e5 || size < 1e-3) return value.toExponential(2);
    return String(Number(value.toPrecision(4)));
  }

  function el(tag, className, parent) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (parent) parent.appendChild(node);
    return node;
  }

  // The participant's view: a message line and a value drawn as a bar or a circle.
  // options: shape ("bar" | "circle"), min, max (fixed range; else automatic), range (a
  // ValueRange to share between displays), showNumber (default true).
  class Display {
    constructor(parent, options = {}) {
      this.shape = options.shape === "circle" ? "circle" : "bar";
      this.range = options.range || new ValueRange(options.min, options.max);
      this.showNumber = options.showNumber !== false;
      this.root = el("div", `rtf-stage rtf-${this.shape}`, parent);
      this.root.dataset.state = "empty";
      this.messageEl = el("div", "rtf-message", this.root);
      this.messageEl.setAttribute("role", "status");
      this.messageEl.setAttribute("aria-live", "polite");
      this.figure = el("div", "rtf-figure", this.root);
      this.figure.setAttribute("role", "img");
      this.track = el("div", "rtf-track", this.figure);
      this.fill = el("div", "rtf-fill", this.track);
      this.label = el("div", "rtf-value", this.root);
      this.rangeEl = el("div", "rtf-range", this.root);
    }

    setMessage(text) {
      this.messageEl.textContent = text || "";
      this.root.classList.toggle("rtf-has-message", Boolean(text));
    }

    // Draw a value; returns what was drawn: { number, fraction, clamped } (number NaN and
    // fraction null when there is no usable value).
    showValue(value) {
      const number = toNumber(value);
      this.root.classList.remove("rtf-clamped-low", "rtf-clamped-high");
      if (!Number.isFinite(number)) {
        this.root.dataset.state = "novalue";
        this.fill.style.height = this.fill.style.width = "0";
        this.figure.setAttribute("aria-label", "no value");
        this.label.textContent = value === null || value === undefined || typeof value === "number"
          ? "no value" : `no value (${String(value).slice(0, 60)})`;
        this.rangeEl.textContent = "";
        return { number: NaN, fraction: null, clamped: 0 };
      }
      this.range.see(number);
      const { fraction, clamped } = this.range.place(number);
      const size = `${(fraction * 100).toFixed(3)}%`;
      if (this.shape === "circle") {
        this.fill.style.width = this.fill.style.height = size;
      } else {
        this.fill.style.width = "";
        this.fill.style.height = size;
      }
      if (clamped < 0) this.root.classList.add("rtf-clamped-low");
      if (clamped > 0) this.root.classList.add("rtf-clamped-high");
      this.root.dataset.state = "value";
      const text = formatValue(number);
      this.figure.setAttribute("aria-label", `value ${text}`);
      const side = clamped < 0 ? " (below the range)" : clamped > 0 ? " (above the range)" : "";
      this.label.textContent = this.showNumber ? text + side : "";
      const [lo, hi] = this.range.bounds();
      this.rangeEl.textContent = this.showNumber && hi > lo
        ? `${this.range.auto ? "range so far" : "range"} ${formatValue(lo)} to ${formatValue(hi)}`
        : "";
      return { number, fraction, clamped };
    }

    clearValue() {
      this.root.dataset.state = "empty";
      this.root.classList.remove("rtf-clamped-low", "rtf-clamped-high");
      this.fill.style.height = this.fill.style.width = "0";
      this.label.textContent = "";
      this.rangeEl.textContent = "";
    }
  }

  // ---------------------------------------------------------------- connection state

  const STATUS_TEXT = {
    idle: "not connected",
    connecting: "connecting to rtcloud ...",
    open: "connected to rtcloud",
    reconnecting: "connection lost: reconnecting ...",
    unauthorized: "not logged in",
    closed: "closed",
  };

  // A small dot in a corner (title: the state), and a banner while something is wrong.
  class StatusBadge {
    constructor(client, parent = document.body) {
      this.dot = el("div", "rtf-status", parent);
      this.dot.setAttribute("aria-hidden", "true");
      this.banner = el("div", "rtf-banner", parent);
      this.banner.setAttribute("role", "alert");
      this.update = this.update.bind(this);
      client.on("status", this.update);
      this.update(client.status, {});
    }

    update(status, detail) {
      this.dot.dataset.state = status;
      this.dot.title = STATUS_TEXT[status] || status;
      this.banner.textContent = "";
      this.banner.dataset.state = status;
      if (status === "unauthorized") {
        this.banner.append("Not logged in to rtcloud (or the server was restarted). ");
        const link = el("a", "", this.banner);
        link.href = detail.loginUrl || loginUrl();
        link.textContent = "Log in at /login first";
        this.banner.append(", then this page connects by itself.");
      } else if (status === "reconnecting") {
        const wait = detail.retryMs ? ` (retrying in ${(detail.retryMs / 1000).toFixed(1)} s)` : "";
        this.banner.textContent = detail.serverDown
          ? `The rtcloud server does not answer${wait}.`
          : `Connection to rtcloud lost: reconnecting${wait}.`;
      }
      this.banner.hidden = !this.banner.textContent;
    }
  }

  root.RtcloudFeedback = {
    VERSION,
    FeedbackClient,
    Display,
    StatusBadge,
    ValueRange,
    formatValue,
    toNumber,
    shared,
    loginUrl,
  };
})(typeof window !== "undefined" ? window : globalThis);
