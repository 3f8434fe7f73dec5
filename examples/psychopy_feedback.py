"""Example PsychoPy presentation script: show each volume's feedback as a bar, collect keys.

Run on the stimulus computer while ``rtcloud serve --subjectRemote`` runs the experiment:

    python psychopy_feedback.py SERVER:8888 USER --run 1 --volumes 200

Without PsychoPy installed it runs in text mode (prints what it would draw), which is how
its logic is exercised in tests of the feedback client.
"""

import argparse
import getpass

from rtcloud.feedback import FeedbackClient


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
        from psychopy import core, event, visual  # noqa: F401

        window = visual.Window(fullscr=False, color="black")
        bar = visual.Rect(window, width=0.2, height=0.0, fillColor="green")
        text = visual.TextStim(window, text="")
    except ImportError:
        window = None
    for tr in range(args.volumes):
        result = feedback.wait_for_result(args.run, tr, timeout=args.tr * 3)
        if result is None:
            continue
        value = float(result["value"])
        if window is None:
            print(f"TR {tr}: value {value:+.3f} ({feedback.message()})")
            continue
        bar.height = max(-1.0, min(1.0, value))
        text.text = feedback.message()
        bar.draw()
        text.draw()
        window.flip()
        keys = event.getKeys(timeStamped=core.Clock())
        if keys:
            key, rt = keys[0]
            feedback.send_response(args.run, tr, {"key": key, "rt": rt})
    feedback.close()


if __name__ == "__main__":
    main()
