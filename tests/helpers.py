"""Small helpers shared by the tests (imported as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

#: The repository's root folder.
REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=20.0, what="condition"):
    """Poll ``predicate`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class FakeClock:
    """A clock the test moves by hand, for the server's logins, sessions and tokens.

    It has the :class:`rtcloud.server.clock.Clock` methods. ``sleep`` waits (in whatever event
    loop calls it) until :meth:`advance` moves the time past its end; :attr:`sleeping` counts
    the sleepers, so a test can wait for work to reach a sleep instead of sleeping itself.
    """

    def __init__(self, wall_start: float = 1_700_000_000.0) -> None:
        import threading

        self._now = 1000.0
        self._wall_offset = wall_start - self._now
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, object, object]] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = (self._now + seconds, loop, future)
        with self._lock:
            self._sleepers.append(entry)
        try:
            await future
        finally:
            with self._lock:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        with self._lock:
            return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move the time on; wake every sleeper whose end has come."""
        with self._lock:
            self._now += seconds
            due = [entry for entry in self._sleepers if entry[0] <= self._now]
            for entry in due:
                self._sleepers.remove(entry)
        for _, loop, future in due:
            loop.call_soon_threadsafe(_wake, future)  # type: ignore[attr-defined]


def _wake(future) -> None:
    if not future.done():
        future.set_result(None)


def start_service(kind, server, *extra, password="test", user="test"):
    """Start ``rtcloud data-service`` or ``subject-service`` as a process logged in to
    ``server`` (a ProjectServer); its output is piped."""
    env = dict(os.environ, RTCLOUD_PASSWORD=password, PYTHONUNBUFFERED="1")
    host = server.url.split("//")[1].rstrip("/")
    cmd = [sys.executable, "-m", "rtcloud", kind, "-s", host, "-u", user, *extra]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
