"""Example PsychoPy presentation script: show each volume's feedback as a bar, collect keys.

Run on the stimulus computer while ``rtcloud serve --subjectRemote`` runs the experiment:

    python psychopy_feedback.py SERVER:8888 USER --run 1 --volumes 200

A key pressed while volume t's feedback is on screen is volume t's response, its ``rt`` in
seconds from the moment that feedback appeared (the first key per volume counts). Keys are
read every 20 ms while the script waits for the next result, so ``rt`` is good to about
20 ms. Without PsychoPy installed it runs in text mode (prints what it would draw).
"""

import argparse
import getpass
import time

from rtcloud.feedback import FeedbackClient

#: How often keys are read while waiting for the next result (seconds).
POLL = 0.02


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("user")
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--tr", type=float, default=2.0)
    args = parser.parse_args()
    feedback = FeedbackClient(args.server, args.user, getpass.getpass()).start()
    try:
        from psychopy import core, event, visual

        window = visual.Window(fullscr=False, color="black")
        bar = visual.Rect(window, width=0.2, height=0.0, fillColor="green")
        text = visual.TextStim(window, text="")
    except ImportError:
        window = None
    on_screen = None  # the volume whose feedback is shown: its number, clock, answered

    def read_keys():
        """Give the first key pressed during the feedback on screen to its volume."""
        if window is None or on_screen is None:
            return
        keys = event.getKeys(timeStamped=on_screen["clock"])
        if keys and not on_screen["answered"]:
            key, rt = keys[0]
            on_screen["answered"] = True
            # kept and sent later if the link is down: a key press is never lost
            feedback.send_response(args.run, on_screen["tr"], {"key": key, "rt": rt})

    for tr in range(args.volumes):
        result = None
        give_up = time.monotonic() + args.tr * 3
        while result is None and time.monotonic() < give_up:
            read_keys()
            result = feedback.wait_for_result(args.run, tr, timeout=POLL)
        if result is None:
            continue
        value = float(result["value"])
        if window is None:
            print(f"TR {tr}: value {value:+.3f} ({feedback.message()})")
            continue
        read_keys()  # keys pressed until now belong to the feedback shown until now
        bar.height = max(-1.0, min(1.0, value))
        text.text = feedback.message()
        bar.draw()
        text.draw()
        window.flip()
        on_screen = {"tr": tr, "clock": core.Clock(), "answered": False}
    if window is not None:  # the last feedback: its answer may come within one TR
        until = time.monotonic() + args.tr
        while on_screen is not None and not on_screen["answered"] and time.monotonic() < until:
            read_keys()
            time.sleep(POLL)
    feedback.close()


if __name__ == "__main__":
    main()
