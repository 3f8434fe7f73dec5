"""Issue 13 item 10: a script started by a server ends when that server dies.

``rtcloud serve`` in its own process starts a script with the Run command (as the page
does); the script retries a call five times a second for ever, as a script that catches
every error would. The server is killed (SIGKILL: no chance to stop its script).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from faultlib import ServerProcess, alive

from rtcloud.lifeline import GRACE

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="reads /proc, sends SIGKILL")

STUBBORN = """
import os, sys, time
from rtCommon.clientInterface import ClientInterface

here = os.path.dirname(os.path.abspath(__file__))
ci = ClientInterface()
with open(os.path.join(here, "pid"), "w") as fh:
    fh.write(str(os.getpid()))
try:
    while True:  # retries for ever, whatever fails
        try:
            ci.webInterface.plotDataPoint(1, 0, 1.0)
        except Exception:
            pass
        time.sleep(0.2)
finally:
    with open(os.path.join(here, "ended"), "w") as fh:
        fh.write("cleanly")
"""


def script_pid(project_dir):
    """The pid the script wrote once it connected."""
    pid_file = project_dir / "pid"
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the script did not start"
        time.sleep(0.05)
    return int(pid_file.read_text())


def wait_gone(pid, limit):
    """Seconds until ``pid`` ended (at most ``limit``); the orphan is killed if it did not."""
    start = time.monotonic()
    while alive(pid) and time.monotonic() - start < limit:
        time.sleep(0.05)
    took = time.monotonic() - start
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the orphaned script is still running (before the fix: forever)")
    return took


def test_a_script_ends_within_seconds_when_its_server_is_killed(tmp_path, project_dir):
    (project_dir / "proj.py").write_text(STUBBORN)
    server = ServerProcess(project_dir, tmp_path)
    try:
        server.run_script()
        pid = script_pid(project_dir)
        assert alive(pid)
        server.signal(signal.SIGKILL)
        ended = wait_gone(pid, GRACE + 10)
        assert ended < GRACE + 2, f"the script ended {ended:.1f} s after its server"
        # it ended its run: the KeyboardInterrupt ran its finally block
        assert (project_dir / "ended").read_text() == "cleanly"
    finally:
        server.kill()


def test_an_orphan_that_swallows_the_interrupt_exits_after_the_grace(tmp_path, project_dir):
    deaf = STUBBORN.replace(  # swallows the interrupt wherever it lands
        """            ci.webInterface.plotDataPoint(1, 0, 1.0)
        except Exception:
            pass
        time.sleep(0.2)""",
        """            ci.webInterface.plotDataPoint(1, 0, 1.0)
            time.sleep(0.2)
        except BaseException:
            pass""",
    )
    assert deaf != STUBBORN
    (project_dir / "proj.py").write_text(deaf)
    server = ServerProcess(project_dir, tmp_path)
    try:
        server.run_script()
        pid = script_pid(project_dir)
        server.signal(signal.SIGKILL)
        ended = wait_gone(pid, GRACE + 10)
        assert GRACE - 0.5 < ended < GRACE + 2  # the hard exit after GRACE
        assert not (project_dir / "ended").exists()  # os._exit: no finally ran
    finally:
        server.kill()
