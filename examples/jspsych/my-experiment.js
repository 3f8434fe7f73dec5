// My own jsPsych experiment with rtcloud feedback (see README.md in this folder).
//
// An instruction screen shows the script's message until the first result is due; then each
// result is drawn as a horizontal gauge (our own `stimulus` function) for at most
// ?duration= ms (default 1500); the participant answers F (focused) or J (distracted),
// which ends the trial and goes back to the script (subjInterface.getResponse). The script
// ends the experiment with subjInterface.setMessage("end").

(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const duration = Number(params.get("duration")) || 1500;

  const client = RtcloudFeedback.shared();
  new RtcloudFeedback.StatusBadge(client, document.body);
  let finished = false;
  client.on("message", (text, how) => {
    if (how.source === "message" && text.trim().toLowerCase() === "end") finished = true;
  });

  // Draw one result into `element` (a value from 0 to 1 fills the gauge).
  function gauge(element, result) {
    const value = RtcloudFeedback.toNumber(result.value);
    const fraction = Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
    const frame = document.createElement("div");
    frame.className = "gauge";
    const level = document.createElement("div");
    level.className = "gauge-level";
    level.style.width = `${fraction * 100}%`;
    frame.appendChild(level);
    const caption = document.createElement("p");
    caption.className = "gauge-caption";
    caption.textContent = "F: focused  \u00b7  J: distracted";
    element.append(frame, caption);
  }

  const jsPsych = initJsPsych({
    display_element: "jspsych-target",
    on_finish: () => {
      document.getElementById("jspsych-target").textContent = "Thank you!";
      document.body.dataset.finished = "true";
    },
  });

  const instructions = {
    type: jsPsychRtcloudFeedback,
    show: "message",          // the script's message (setMessage), updated as it changes
    choices: "NO_KEYS",
    end_on_message: false,    // ... and ended by the first result (end_on_next_result)
  };
  const feedback = {
    type: jsPsychRtcloudFeedback,
    stimulus: gauge,
    choices: ["f", "j"],
    response_ends_trial: true,
    trial_duration: duration,
  };

  window.experiment = jsPsych;  // jsPsych.data, for the researcher (and the tests)
  jsPsych.run([instructions, { timeline: [feedback], loop_function: () => !finished }]);
})();
