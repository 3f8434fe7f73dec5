"""Timing end to end: feedback shown on the stimulus side lands on the scanner's next TR.

The real sample script (with ``onsetAtNextTr``) runs against a real server; the scanner is a
replay whose volumes' AcquisitionTimes lie on a real-time TR grid; the stimulus computer is a
FeedbackClient. ``ping``, ``getClockSkew`` and ``dicomTimeToNextTr`` in the script turn each
volume into an onset delay; the client shows the value at arrival + delay. Each value must
appear at the TR boundary after its volume.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
import threading
import time

import tomlkit

from helpers import REPO, wait_for
from rtcloud.feedback import FeedbackClient
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series


def test_feedback_is_shown_at_the_next_tr(server_factory, tmp_path):
    tr, volumes = 0.5, 6
    server = server_factory(subject_remote=True)
    feedback = FeedbackClient(server.url.split("//")[1].rstrip("/"), "test", "test").start()
    wait_for(lambda: server.service_connected("subject"), what="the feedback client")
    source, scanner = tmp_path / "source", tmp_path / "scanner"
    scanner.mkdir()
    doc = tomlkit.parse((REPO / "projects" / "sample" / "conf" / "sample.toml").read_text())
    doc.update(
        imgDir=str(scanner),
        numVolumes=volumes,
        trInterval=tr,
        onsetAtNextTr=True,
        resultsDir=str(tmp_path / "results"),
    )
    config = tmp_path / "sample.toml"
    config.write_text(tomlkit.dumps(doc))
    script = subprocess.Popen(
        [sys.executable, str(REPO / "projects" / "sample" / "sample.py"), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        # the scanner starts once the script is up and watching (its imports take a while)
        assert script.stdout is not None
        for line in script.stdout:
            lines.append(line)
            if "watching" in line:
                break
        else:
            raise AssertionError("the sample script ended before watching:\n" + "".join(lines))
        start = math.ceil(time.time()) + 1.0  # the scanner acquires volume i at start + i*TR
        generate_series(
            source,
            num_volumes=volumes,
            tr_ms=int(tr * 1000),
            start=dt.datetime.fromtimestamp(start),
        )
        # each file is complete 60 ms after its acquisition (a scanner needs a moment too)
        delay = start + 0.06 - time.time()
        replay = threading.Thread(
            target=replay_series,
            args=(source, scanner),
            kwargs={"tr": tr, "mode": "pieces", "start_delay": delay},
        )
        replay.start()
        offsets = []
        for index in range(volumes):
            result = feedback.wait_for_result(1, index, timeout=start + 10 - time.time())
            assert result is not None, f"no feedback for volume {index}"
            offsets.append(result["shownAt"] - (start + (index + 1) * tr))
        replay.join()
        output = "".join(lines) + script.communicate(timeout=30)[0]
        assert script.returncode == 0, output
    finally:
        if script.poll() is None:
            script.kill()
            script.communicate()
        feedback.close()
    shown = ", ".join(f"{1000 * o:+.1f}" for o in offsets)
    print(f"feedback shown relative to the next TR (ms): {shown}")
    assert all(abs(o) < 0.03 for o in offsets), f"not on the TR grid (ms): {shown}"
