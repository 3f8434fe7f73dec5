"""Running the experiment's scripts (main, initialize, finalize) as child processes.

One script runs at a time. Its stdout and stderr are read line by line as it writes them and
handed to ``on_line``; every change of state goes to ``on_status``. Its stdin is a pipe
nobody writes to: it closes when the server stops the script or dies, which ends the run
(:mod:`rtcloud.lifeline`). Stop closes the script's stdin, asks the whole process group to
end (SIGTERM, or CTRL_BREAK on Windows), and after a grace period kills what is left; the
run then reports ``stopped`` (not ``failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcloud.errors import StateError
from rtcloud.lifeline import ENV_VAR as LIFELINE

__all__ = ["CONTINUED", "RUN_STARTED_VAR", "RunState", "RunStatus", "ScriptRunner"]

#: Environment variable telling a started script when its start was asked for (epoch seconds).
RUN_STARTED_VAR = "RTCLOUD_RUN_STARTED"
#: Put at the end of each piece of an output line too long to pass on whole (over 1 MiB).
CONTINUED = " \u2026(line continues)"

logger = logging.getLogger(__name__)

IS_WINDOWS = sys.platform == "win32"


class RunState:
    """The states a run goes through."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class RunStatus:
    state: str
    script: str | None = None
    exit_code: int | None = None
    message: str = ""
    #: Of a failed run: its last line of output (usually the error), also in ``message``.
    detail: str = ""

    def as_message(self) -> dict[str, object]:
        return {
            "cmd": "runStatus",
            "state": self.state,
            "script": self.script,
            "exitCode": self.exit_code,
            "message": self.message,
            "detail": self.detail,
        }


class ScriptRunner:
    """Starts, watches and stops one script at a time (runs inside the server's event loop)."""

    def __init__(
        self,
        on_line: Callable[[str, str, str], None],
        on_status: Callable[[RunStatus], None],
        *,
        env: dict[str, str] | None = None,
        grace_period: float = 3.0,
    ) -> None:
        self._on_line = on_line
        self._on_status = on_status
        self._env = env or {}
        self.grace_period = grace_period
        self.status = RunStatus(RunState.IDLE)
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _set(self, status: RunStatus) -> None:
        self.status = status
        self._on_status(status)

    async def start(
        self,
        name: str,
        script: Path,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``python -u script args...``; StateError if a script is already running.

        The script's environment is this process's, plus the runner's and ``env``, plus
        ``RTCLOUD_RUN_STARTED``: when the start was asked for (``time.time()``), so that a
        script can tell files of this run from older ones.
        """
        if self.running:
            raise StateError(
                f"{self.status.script} is still running; stop it before starting {name}"
            )
        if not script.is_file():
            raise StateError(f"{name} script {str(script)!r} does not exist")
        started = time.time()
        env = {**os.environ, **self._env, RUN_STARTED_VAR: f"{started:.3f}", **(env or {})}
        env["PYTHONUNBUFFERED"] = "1"
        env[LIFELINE] = "stdin"  # its stdin pipe closes when this server stops or dies
        env.setdefault("PYTHONIOENCODING", "utf-8")
        kwargs: dict[str, object] = {}
        if IS_WINDOWS:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        self._stop_requested = False
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            str(script),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(cwd),
            env=env,
            limit=1 << 20,
            **kwargs,  # type: ignore[arg-type]
        )
        logger.info("started %s (pid %s): %s %s", name, self._proc.pid, script, " ".join(args))
        self._set(RunStatus(RunState.RUNNING, name, None, f"{name} running"))
        self._task = asyncio.create_task(self._watch(name, self._proc))

    async def _pump(self, name: str, stream: asyncio.StreamReader | None, kind: str) -> str:
        last = ""
        if stream is None:
            return last
        while True:
            continues = False
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # the end, without a last newline
                raw = exc.partial
            except asyncio.LimitOverrunError as exc:
                # a line longer than the limit: passed on in pieces, none of it lost
                # (readline would have dropped what it had read)
                raw = await stream.readexactly(max(exc.consumed, 1))
                continues = True
            if not raw:
                return last
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if continues:
                line += CONTINUED
            if line.strip():
                last = line
            self._on_line(name, kind, line)

    async def _watch(self, name: str, proc: asyncio.subprocess.Process) -> None:
        out, err = await asyncio.gather(
            self._pump(name, proc.stdout, "stdout"), self._pump(name, proc.stderr, "stderr")
        )
        code = await proc.wait()
        if self._stop_requested:
            status = RunStatus(RunState.STOPPED, name, code, f"{name} stopped")
        elif code == 0:
            status = RunStatus(RunState.COMPLETE, name, 0, f"{name} complete")
        else:
            detail = err or out or "no output"
            status = RunStatus(
                RunState.FAILED,
                name,
                code,
                f"{name} failed (exit status {code}): {detail}",
                detail=detail,
            )
        logger.info("%s ended: %s (exit status %s)", name, status.state, code)
        self._proc = None
        self._set(status)

    async def stop(self) -> None:
        """Stop the running script and its children; returns once they are gone."""
        proc, task = self._proc, self._task
        if proc is None or task is None or task.done():
            return
        self._stop_requested = True
        self._set(RunStatus(RunState.STOPPING, self.status.script, None, "stopping ..."))
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        _signal_group(proc.pid, force=False)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.grace_period)
        except asyncio.TimeoutError:
            logger.warning(
                "script pid %s did not stop in %.1f s: killing it", proc.pid, self.grace_period
            )
            _signal_group(proc.pid, force=True)
            await task

    async def wait(self) -> RunStatus:
        """Wait for the current run (if any) to end; return its final status."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.status


def _signal_group(pid: int, *, force: bool) -> None:
    """Ask (or force) a process group to end, on POSIX and on Windows."""
    if IS_WINDOWS:
        if force:
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False
            )
        else:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        return
    sig = signal.SIGKILL if force else signal.SIGTERM  # type: ignore[attr-defined,unused-ignore]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # type: ignore[attr-defined,unused-ignore]
