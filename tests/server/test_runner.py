"""The script runner: real child processes, line-by-line output, stop, exit status."""

import asyncio
import os
import sys
import textwrap

import pytest

from rtcloud.errors import StateError
from rtcloud.server.runner import RunState, ScriptRunner


def script(tmp_path, body, name="s.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


class Recorder:
    def __init__(self):
        self.lines = []
        self.states = []

    def line(self, name, stream, text):
        self.lines.append((name, stream, text))

    def status(self, st):
        self.states.append(st)


def run(coro):
    return asyncio.run(coro)


def test_output_arrives_while_the_script_runs(tmp_path):
    rec = Recorder()
    path = script(
        tmp_path,
        """
        import sys, time
        print("first", flush=True)
        print("oops", file=sys.stderr, flush=True)
        time.sleep(0.5)
        print("args", sys.argv[1:], flush=True)
    """,
    )

    async def main():
        runner = ScriptRunner(rec.line, rec.status)
        await runner.start("mainScript", path, ["--config", "x.toml", "--runs", "1"], tmp_path)
        # the first line is delivered long before the script ends
        for _ in range(200):
            if any(t == "first" for _, _, t in rec.lines):
                break
            await asyncio.sleep(0.01)
        assert runner.running, "first line should arrive while the script still sleeps"
        return await runner.wait()

    final = run(main())
    assert final.state == RunState.COMPLETE and final.exit_code == 0
    texts = [t for _, _, t in rec.lines]
    assert "first" in texts and "oops" in texts
    assert ("mainScript", "stderr", "oops") in rec.lines
    assert "args ['--config', 'x.toml', '--runs', '1']" in texts
    assert [s.state for s in rec.states] == [RunState.RUNNING, RunState.COMPLETE]


def test_failure_reports_exit_status_and_last_line(tmp_path):
    rec = Recorder()
    path = script(
        tmp_path,
        """
        import sys
        print("working")
        raise SystemExit("bad input file")
    """,
    )

    async def main():
        runner = ScriptRunner(rec.line, rec.status)
        await runner.start("initScript", path, [], tmp_path)
        return await runner.wait()

    final = run(main())
    assert final.state == RunState.FAILED and final.exit_code == 1
    assert "bad input file" in final.message


@pytest.mark.skipif(sys.platform == "win32", reason="process groups differ on Windows")
def test_stop_ends_script_and_children_and_says_stopped(tmp_path):
    rec = Recorder()
    pidfile = tmp_path / "child.pid"
    path = script(
        tmp_path,
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("started child", flush=True)
        time.sleep(60)
    """,
    )

    async def main():
        runner = ScriptRunner(rec.line, rec.status, grace_period=2)
        await runner.start("mainScript", path, [], tmp_path)
        for _ in range(500):
            if pidfile.exists() and pidfile.read_text():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(StateError, match="still running"):
            await runner.start("mainScript", path, [], tmp_path)
        await runner.stop()
        return await runner.wait()

    final = run(main())
    assert final.state == RunState.STOPPED
    assert RunState.STOPPING in [s.state for s in rec.states]
    child = int(pidfile.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        asyncio.run(asyncio.sleep(0.02))
    else:
        pytest.fail("the script's child process survived Stop")


@pytest.mark.skipif(sys.platform == "win32", reason="signals differ on Windows")
def test_stop_kills_a_script_that_ignores_sigterm(tmp_path):
    rec = Recorder()
    path = script(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        time.sleep(60)
    """,
    )

    async def main():
        runner = ScriptRunner(rec.line, rec.status, grace_period=0.5)
        await runner.start("mainScript", path, [], tmp_path)
        for _ in range(500):
            if rec.lines:
                break
            await asyncio.sleep(0.01)
        await runner.stop()
        return await runner.wait()

    final = run(main())
    assert final.state == RunState.STOPPED


def test_a_line_longer_than_a_mebibyte_arrives_whole_in_marked_pieces(tmp_path):
    """A 3 MB line reached the page as three pieces of about 1 MB in all: readline drops
    what it has read when a line overruns its limit."""
    from rtcloud.server.runner import CONTINUED

    rec = Recorder()
    path = script(
        tmp_path,
        """
        import sys
        sys.stdout.write("".join(chr(97 + i % 26) for i in range(3_145_731)) + "\\n")
        print("after")
    """,
    )

    async def main():
        runner = ScriptRunner(rec.line, rec.status)
        await runner.start("mainScript", path, [], tmp_path)
        return await runner.wait()

    assert run(main()).state == RunState.COMPLETE
    texts = [t for _, stream, t in rec.lines if stream == "stdout"]
    assert texts[-1] == "after" and len(texts) > 2
    assert all(t.endswith(CONTINUED) for t in texts[:-2]) and not texts[-2].endswith(CONTINUED)
    whole = "".join(t.removesuffix(CONTINUED) for t in texts[:-1])
    assert whole == "".join(chr(97 + i % 26) for i in range(3_145_731))
