// jspsych-rtcloud-feedback.js: a jsPsych (7 or 8) plugin showing rtcloud feedback.
//
// Needs jsPsych and /static/rtcloud-feedback.js loaded first; defines the global
// jsPsychRtcloudFeedback (plugin name "rtcloud-feedback"). Each trial:
//
// - takes the next result the experiment script sent with subjInterface.setResult (oldest
//   first: none is skipped) and shows it at its onset, onsetTimeDelayMs after it arrived in
//   the page (at once if that moment has passed), with the script's current message above;
// - draws it as a bar or circle (parameters shape, min, max), or with your own `stimulus`
//   function(element, result) that fills `element`;
// - records a key press among `choices`: key and rt (ms from the display), and sends it to
//   the server, so the script's subjInterface.getResponse(runId, trId) sees it;
// - ends when the next result is due (end_on_next_result), at a key press
//   (response_ends_trial), after trial_duration ms from the display, or when the script sends
//   a new message (end_on_message).
//
// With show: "message" a trial shows only the current message (setMessage) and ends the same
// ways (a key press ends it only with response_ends_trial). Trial data: see `info.data`.
// The page must come from the rtcloud server (its login cookie opens the socket); if the
// socket cannot connect the page says why (e.g. "log in at /login first").

(function (root) {
  "use strict";

  const PT = (root.jsPsychModule && root.jsPsychModule.ParameterType) || {
    BOOL: 0, STRING: 1, INT: 2, FLOAT: 3, FUNCTION: 4, KEY: 5, KEYS: 6, SELECT: 7, OBJECT: 12,
  };

  const info = {
    name: "rtcloud-feedback",
    version: "1.0.0",
    parameters: {
      /** "result": show the next result; "message": show the current message only. */
      show: { type: PT.SELECT, options: ["result", "message"], default: "result" },
      /** Keys that count as a response ("ALL_KEYS", "NO_KEYS" or a list such as ["f", "j"]). */
      choices: { type: PT.KEYS, default: "ALL_KEYS" },
      /** A response ends the trial. */
      response_ends_trial: { type: PT.BOOL, default: false },
      /** End the trial this many ms after the display (null: no limit). */
      trial_duration: { type: PT.INT, default: null },
      /** End the trial when the next result is due, so that it is shown at its onset. */
      end_on_next_result: { type: PT.BOOL, default: true },
      /** End the trial when the script sends a new message (setMessage). */
      end_on_message: { type: PT.BOOL, default: true },
      /** Your drawing: function(element, result) filling `element` (null: the built-in one). */
      stimulus: { type: PT.FUNCTION, default: null },
      /** Built-in drawing: "bar" or "circle". */
      shape: { type: PT.SELECT, options: ["bar", "circle"], default: "bar" },
      /** Built-in drawing: fixed range (null: the range of the values seen so far). */
      min: { type: PT.FLOAT, default: null },
      max: { type: PT.FLOAT, default: null },
      /** Built-in drawing: print the value under the figure. */
      show_number: { type: PT.BOOL, default: true },
      /** Send the key press to the rtcloud server (subjInterface.getResponse). */
      send_response: { type: PT.BOOL, default: true },
    },
    data: {
      key: { type: PT.STRING },            // the key pressed (null: none)
      response: { type: PT.STRING },       // the same, under jsPsych's usual name
      rt: { type: PT.FLOAT },              // ms from the display to the key press
      runId: { type: PT.INT },
      trId: { type: PT.INT },
      value: { type: PT.OBJECT },          // the result's value as the script sent it
      onsetTimeDelayMs: { type: PT.FLOAT },
      arrival_time: { type: PT.INT },      // Date.now() when the result arrived in the page
      display_time: { type: PT.INT },      // Date.now() when it was shown
      arrival_to_display_ms: { type: PT.FLOAT },  // performance.now() difference
      late_ms: { type: PT.FLOAT },         // shown this much after its onset (queued, or busy)
      duration_ms: { type: PT.FLOAT },     // how long it was shown (the message: the trial)
      message: { type: PT.STRING },        // the script's message during the trial
      ended_by: { type: PT.STRING },       // next_result | response | duration | message
      response_sent: { type: PT.BOOL },    // sent now (false: kept until reconnected)
    },
  };

  // One automatic range for all trials of a page (per fixed min/max), so that bars compare.
  const ranges = new Map();
  function rangeFor(min, max) {
    const key = `${min}/${max}`;
    if (!ranges.has(key)) ranges.set(key, new root.RtcloudFeedback.ValueRange(min, max));
    return ranges.get(key);
  }

  class RtcloudFeedbackPlugin {
    static info = info;

    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      if (!root.RtcloudFeedback) {  // a page that forgot /static/rtcloud-feedback.js
        display_element.textContent = "rtcloud-feedback: load /static/rtcloud-feedback.js first";
        console.error("rtcloud-feedback: load /static/rtcloud-feedback.js before the plugin");
        return;
      }
      const api = this.jsPsych.pluginAPI;
      const startPerf = performance.now();
      const client = root.RtcloudFeedback.shared();
      display_element.textContent = "";
      const display = new root.RtcloudFeedback.Display(display_element, {
        shape: trial.shape,
        range: rangeFor(trial.min, trial.max),
        showNumber: trial.show_number,
      });
      display.setMessage(client.message);

      let result = null;
      let press = null;
      let responseSent = null;
      let ended = false;
      let keyListener = null;
      const waits = [];
      const stops = [];

      const end = (endedBy) => {
        if (ended) return;
        ended = true;
        for (const wait of waits) wait.cancel();
        for (const stop of stops) stop();
        if (keyListener) api.cancelKeyboardResponse(keyListener);
        api.clearAllTimeouts();
        display_element.textContent = "";
        const data = {
          key: press ? press.key : null,
          response: press ? press.key : null,
          rt: press ? press.rt : null,
          runId: result ? result.runId : null,
          trId: result ? result.trId : null,
          value: result ? result.value : null,
          onsetTimeDelayMs: result ? result.onsetTimeDelayMs : null,
          arrival_time: result ? result.arrivalTime : null,
          display_time: result ? result.displayTime : null,
          arrival_to_display_ms: result ? result.delayMs : null,
          late_ms: result ? result.lateMs : null,
          duration_ms: result ? performance.now() - result.displayPerf
            : trial.show === "message" ? performance.now() - startPerf : null,
          message: client.message,
          ended_by: endedBy,
          response_sent: responseSent,
        };
        this.jsPsych.finishTrial(data);
      };

      const listen = (onKey) => {
        if (trial.choices === "NO_KEYS" || (Array.isArray(trial.choices) && !trial.choices.length)) return;
        keyListener = api.getKeyboardResponse({
          callback_function: onKey,
          valid_responses: trial.choices,
          rt_method: "performance",
          persist: false,
          allow_held_key: false,
        });
      };

      const untilNextResult = () => {
        if (!trial.end_on_next_result) return;
        const wait = client.nextDue();
        waits.push(wait);
        wait.then((next) => {
          if (next) end("next_result");
        });
      };

      stops.push(client.on("message", (text) => {
        display.setMessage(text);
        if (trial.end_on_message) end("message");
      }));

      if (trial.show === "message") {
        display.clearValue();
        listen((info) => {
          press = { key: info.key, rt: info.rt };
          if (trial.response_ends_trial) end("response");
        });
        if (trial.trial_duration !== null) api.setTimeout(() => end("duration"), trial.trial_duration);
        untilNextResult();
        return;
      }

      const wait = client.next();
      waits.push(wait);
      wait.then((next) => {
        if (!next || ended) return;
        result = next;
        if (typeof trial.stimulus === "function") {
          const target = display.figure;
          target.textContent = "";
          display.root.dataset.state = "custom";
          try {
            trial.stimulus(target, result);
          } catch (err) {
            console.error("rtcloud-feedback: the stimulus function failed:", err);
            target.textContent = `stimulus function failed: ${err && err.message}`;
            target.className = "rtf-trial-error";
          }
        } else {
          display.showValue(result.value);
        }
        listen((info) => {
          press = { key: info.key, rt: Math.round(info.rt * 10) / 10 };
          if (trial.send_response) {
            responseSent = client.sendResponse(result.runId, result.trId, {
              key: info.key,
              rt: press.rt,
              runId: result.runId,
              trId: result.trId,
              value: result.value,
              displayTime: result.displayTime,
              pressTime: Date.now(),
              source: "jsPsych rtcloud-feedback",
            });
          }
          if (trial.response_ends_trial) end("response");
        });
        if (trial.trial_duration !== null) api.setTimeout(() => end("duration"), trial.trial_duration);
        untilNextResult();
      });
    }
  }

  root.jsPsychRtcloudFeedback = RtcloudFeedbackPlugin;
})(typeof window !== "undefined" ? window : globalThis);
