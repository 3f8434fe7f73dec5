"""Small helpers shared by the tests (imported as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
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


class CuttingProxy:
    """Forwards TCP from 127.0.0.1 to ``upstream``; :meth:`arm` makes it cut a connection
    after it has carried so many more bytes one way: a link dropping mid-download
    (``toward="client"``) or mid-upload (``toward="upstream"``)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.cuts = 0
        self._armed: tuple[int, bool] | None = None  # (bytes left, toward the client)
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, limit: int, toward: str = "client") -> None:
        assert toward in ("client", "upstream")
        with self._lock:
            self._armed = (limit, toward == "client")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=10)
            pair = (client, upstream)
            for args in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(*args, pair), daemon=True).start()

    def _pump(self, src, dst, to_client: bool, pair) -> None:
        try:
            while data := src.recv(65536):
                cut = False
                with self._lock:
                    armed = self._armed
                    if armed is not None and armed[1] == to_client:
                        left = armed[0] - len(data)
                        cut = left < 0
                        self._armed = None if cut else (left, to_client)
                        if cut:
                            self.cuts += 1
                            data = data[: armed[0]]  # what fits, then the cut
                dst.sendall(data)
                if cut:
                    break
        except OSError:
            pass
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.sock.close()
