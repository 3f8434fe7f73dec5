// The participant's feedback page (/feedback): the message, and each result drawn at its
// onset; key presses while a result is shown go back to the script (getResponse).
// Options come from the URL (see feedback.html); everything else is in rtcloud-feedback.js.

(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const notes = [];
  // Keys that never count as responses: modifiers, and keys the browser itself uses.
  const IGNORED = new Set(["Shift", "Control", "Alt", "Meta", "AltGraph", "CapsLock", "Escape", "Tab",
    "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12"]);

  function numberParam(name) {
    const text = params.get(name);
    if (text === null || text.trim() === "") return null;
    const value = Number(text);
    if (!Number.isFinite(value)) {
      notes.push(`?${name}=${text} ignored: not a number`);
      return null;
    }
    return value;
  }

  let shape = params.get("shape") || "bar";
  if (shape !== "bar" && shape !== "circle") {
    notes.push(`?shape=${shape} ignored: use bar or circle`);
    shape = "bar";
  }
  let min = numberParam("min");
  let max = numberParam("max");
  if (min !== null && max !== null && !(max > min)) {
    notes.push(`?min=${min}&max=${max} ignored: max must be above min`);
    min = max = null;
  }
  const durationMs = numberParam("duration");
  const minShowMs = numberParam("minShowMs");
  const keys = params.get("keys")
    ? new Set(params.get("keys").split(",").map((k) => k.trim().toLowerCase()).filter(Boolean))
    : null;
  const everyPress = params.get("responses") === "all";

  const client = RtcloudFeedback.shared({ minShowMs: minShowMs === null ? undefined : minShowMs });
  const display = new RtcloudFeedback.Display(document.getElementById("stage"), {
    shape, min, max, showNumber: params.get("number") !== "0",
  });
  new RtcloudFeedback.StatusBadge(client, document.body);

  let current = null;      // { result, presses } while a result is shown
  let hideTimer = null;
  const responses = [];    // what this page sent, for researchers and tests

  client.on("message", (text) => {
    display.setMessage(text);
    display.clearValue();  // a message replaces the feedback ("End run" stands alone)
    current = null;
  });

  client.on("result", (result) => {
    const drawn = display.showValue(result.value);
    result.fraction = drawn.fraction;
    current = { result, presses: 0 };
    clearTimeout(hideTimer);
    if (durationMs !== null && durationMs > 0) {
      hideTimer = setTimeout(() => {
        display.clearValue();
        current = null;
      }, durationMs);
    }
  });

  function keyName(event) {
    if (event.key === " ") return "space";
    return event.key.length === 1 ? event.key.toLowerCase() : event.key;
  }

  window.addEventListener("keydown", (event) => {
    if (event.repeat || IGNORED.has(event.key) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (!current) return;
    const key = keyName(event);
    if (keys && !keys.has(key.toLowerCase())) return;
    if (current.presses > 0 && !everyPress) return;
    event.preventDefault();
    current.presses += 1;
    const result = current.result;
    // event.timeStamp is on the performance.now() clock: the press itself, not this handler
    const pressed = event.timeStamp > 0 ? event.timeStamp : performance.now();
    const response = {
      key,
      rt: Math.round((pressed - result.displayPerf) * 10) / 10,
      runId: result.runId,
      trId: result.trId,
      value: result.value,
      press: current.presses,
      displayTime: result.displayTime,
      pressTime: Date.now(),
      source: "rtcloud feedback page",
    };
    response.sent = client.sendResponse(result.runId, result.trId, response);
    responses.push(response);
  });

  // Full screen on request; the mouse pointer hides while it rests.
  const fullscreen = document.getElementById("fullscreen");
  fullscreen.addEventListener("click", () => {
    fullscreen.blur();
    if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen();
  });
  document.addEventListener("fullscreenchange", () => {
    fullscreen.hidden = Boolean(document.fullscreenElement);
  });
  let idleTimer = null;
  document.addEventListener("mousemove", () => {
    document.body.classList.remove("rtf-idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => document.body.classList.add("rtf-idle"), 3000);
  });

  if (notes.length) {
    const el = document.getElementById("notes");
    el.textContent = notes.join("; ");
    el.hidden = false;
    console.warn(`rtcloud feedback page: ${notes.join("; ")}`);
  }

  window.rtcloudFeedbackPage = { client, display, responses, options: { shape, min, max, durationMs, keys } };
})();
