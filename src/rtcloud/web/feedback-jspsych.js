// The example jsPsych experiment at /feedback/jspsych: rtcloud-feedback trials in a loop
// until the experiment script sends the message "end" (any case), or a message whose first
// word is "end" ("End run"); ?end=TEXT makes exactly TEXT the end instead.
// URL options: ?shape=circle, ?min=..&max=.. (fixed range), ?keys=f,j (default: any key).

(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const fatal = document.getElementById("fatal");
  const source = document.body.dataset.jspsychUrl;

  function stop(text) {
    fatal.textContent = text;
    fatal.hidden = false;
    console.error(`rtcloud jsPsych page: ${text}`);
  }

  if (typeof initJsPsych !== "function") {
    stop(
      `jsPsych could not be loaded from ${source}. ` +
      (document.body.dataset.jspsychSource === "cdn"
        ? "This computer may be offline (or the file changed and failed its integrity " +
          "check): start the server with rtcloud serve --jspsych DIR (a local copy of " +
          "jsPsych, see docs/feedback-page.md) and reload."
        : "Check the folder given to rtcloud serve --jspsych."),
    );
    return;
  }

  function numberParam(name) {
    const text = params.get(name);
    const value = text === null || text.trim() === "" ? NaN : Number(text);
    return Number.isFinite(value) ? value : null;
  }

  const endText = params.get("end");
  function isEnd(text) {
    const said = String(text || "").trim().toLowerCase();
    if (endText !== null) return said === endText.trim().toLowerCase();
    return /^end\b/.test(said);
  }

  const client = RtcloudFeedback.shared();
  new RtcloudFeedback.StatusBadge(client, document.body);
  // Only a message sent while the page runs ends it (not the one it finds when it opens).
  let ended = false;
  client.on("message", (text, how) => {
    if (how && how.source === "message") ended = isEnd(text);
  });

  const keys = params.get("keys");
  const jsPsych = initJsPsych({
    display_element: "jspsych-target",
    on_finish: () => {
      const target = document.getElementById("jspsych-target");
      target.textContent = "";
      const shown = jsPsych.data.get().filter({ trial_type: "rtcloud-feedback" }).filterCustom(
        (trial) => trial.trId !== null,
      ).count();
      const done = document.createElement("div");
      done.className = "rtf-stage";
      done.dataset.state = "empty";
      const text = document.createElement("div");
      text.className = "rtf-message";
      text.textContent = client.message;
      const small = document.createElement("span");
      small.className = "rtf-small";
      small.textContent = `${shown} feedback trials shown; reload this page for the next run`;
      text.appendChild(small);
      done.classList.add("rtf-has-message");
      done.appendChild(text);
      target.appendChild(done);
      document.body.dataset.finished = "true";
    },
  });

  const feedback = {
    type: jsPsychRtcloudFeedback,
    shape: params.get("shape") === "circle" ? "circle" : "bar",
    min: numberParam("min"),
    max: numberParam("max"),
    choices: keys ? keys.split(",").map((k) => k.trim()).filter(Boolean) : "ALL_KEYS",
  };

  const timeline = [
    { timeline: [feedback], loop_function: () => !ended },
  ];

  window.rtcloudJsPsych = jsPsych;  // for researchers (and tests): jsPsych.data
  jsPsych.run(timeline);
})();
