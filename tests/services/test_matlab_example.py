"""examples/matlab/readFeedback.m run by GNU Octave (a MATLAB we did not write) against a
real ``rtcloud subject-service``: values at their onset times, late results not shown.

Skipped where Octave is not installed (``apt-get install octave``)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers import REPO, start_service, wait_for
from rtcloud.interfaces.client import ClientInterface

OCTAVE = shutil.which("octave-cli")
pytestmark = pytest.mark.skipif(OCTAVE is None, reason="GNU Octave (octave-cli) is not installed")


def test_read_feedback_returns_each_value_at_its_onset(server_factory, tmp_path):
    """The example returned a value as soon as its file appeared, ignoring the script's
    onsetTimeDelayMs, and showed late results like live ones."""
    server = server_factory(subject_remote=True)
    out = tmp_path / "out"
    service = start_service("subject-service", server, "-o", str(out))
    ready = tmp_path / "octave-ready"
    code = f"""
        addpath('{REPO / "examples" / "matlab"}');
        fclose(fopen('{ready}', 'w'));
        for tr = 0:3
          [v, r] = readFeedback('{out}', 1, tr, 20);
          fprintf('%d %.17g %.6f\\n', tr, v, time() - r.timestamp);
        end
    """
    octave = subprocess.Popen(
        [OCTAVE, "--no-gui", "--eval", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: server.relay.peers(), what="the subject service")
        wait_for(ready.exists, timeout=60, what="Octave to wait for the results")
        client = ClientInterface()
        try:
            subj = client.subjInterface
            for tr, value in enumerate([0.25, -2.5e-7, 3.0]):
                subj.setResult(1, tr, value, 600)
            wait_for(lambda: (out / "run1" / "results" / "vol-1-2.json").exists(), what="files")
            # a result kept while the service was away, as the service writes it
            late = json.loads((out / "run1" / "results" / "vol-1-2.json").read_text())
            late.update(trId=3, late=True)
            (out / "run1" / "results" / "vol-1-3.json").write_text(json.dumps(late))
        finally:
            client.close()
        output, _ = octave.communicate(timeout=120)
        assert octave.returncode == 0, output
        # (Octave may add a line of its own at exit)
        rows = [line.split() for line in output.split("\n") if line[:1].isdigit()]
        values = {int(tr): float(v) for tr, v, _ in rows}
        after = {int(tr): float(a) for tr, _, a in rows}
        assert values[0] == 0.25 and values[1] == -2.5e-7 and values[2] == 3.0
        assert after[0] >= 0.59  # shown at its onset (600 ms after it arrived), not before
        assert values[3] != values[3]  # NaN: late, not shown
    finally:
        if octave.poll() is None:
            octave.kill()
        service.kill()
        service.communicate(timeout=10)
