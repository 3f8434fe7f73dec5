"""The real processes of one benchmark session: start, watch, sample memory, always stop.

A :class:`Session` is one of three set-ups, all on 127.0.0.1 with port 0 and temporary
folders (nothing in ``~/.rtcloud`` is read or written: the server-info and password files are
redirected into the session's folder):

- ``local``: no server; the script (``worker.py``) reads the scanner folder itself;
- ``server``: ``python -m rtcloud serve`` in its own process; the script reaches it over RPyC;
- ``remote``: ``serve --remote --test`` plus ``rtcloud data-service`` and ``rtcloud
  subject-service`` processes that log in over WebSockets; the session waits until the server
  logs both as connected.

With a server, an experimenter's page is kept open on ``/ws/ui`` (as in a real session; see
:mod:`benchlib.page`) unless ``page=False``.

Every child is started in its own process group (Ctrl-C reaches only the benchmark, which
then stops them in order: script, services, server; SIGINT, then SIGTERM, then SIGKILL).
A :class:`RssSampler` thread reads every process's resident memory once per interval.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .page import ExperimenterPage

try:  # used only when already installed; otherwise /proc is read directly
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

WORKER = Path(__file__).resolve().parent / "worker.py"
ROLES = ("server", "data_service", "subject_service", "script")


class BenchError(RuntimeError):
    """The system under test did not do what a session needs (start, connect, answer)."""


def memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process in MB (2**20 bytes).

    Linux reads ``/proc/<pid>/status``; elsewhere psutil gives the current RSS if it is
    installed (no peak); otherwise None.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return None
    except OSError:
        pass
    if psutil is not None and field == "VmRSS":
        with contextlib.suppress(Exception):
            return float(psutil.Process(pid).memory_info().rss) / 2**20
    return None


def _busy_seconds() -> float | None:
    """CPU seconds all processors spent busy since boot (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """How busy the machine was during a measurement, and how much of that was not us.

    ``others_cores`` (average cores used by processes outside this benchmark) tells whether
    someone else's work competed with the measurement on this machine. Counts a child's CPU
    only once it has been waited for, so stop the meter after the session is closed.
    """

    def __init__(self) -> None:
        self._start = (time.monotonic(), _busy_seconds(), _own_seconds())

    def stop(self) -> dict[str, float | None]:
        wall = time.monotonic() - self._start[0]
        busy0, busy1 = self._start[1], _busy_seconds()
        ours = _own_seconds() - self._start[2]
        if busy0 is None or busy1 is None or wall <= 0:
            return {
                "wall_s": wall,
                "busy_cores": None,
                "ours_cores": ours / wall if wall else None,
                "others_cores": None,
            }
        busy = busy1 - busy0
        return {
            "wall_s": round(wall, 2),
            "busy_cores": round(busy / wall, 3),
            "ours_cores": round(ours / wall, 3),
            "others_cores": round(max(0.0, busy - ours) / wall, 3),
        }


class RssSampler:
    """Samples the resident memory of named processes every ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, name: str, pid: int) -> None:
        with self._lock:
            self.pids[name] = pid
            self.samples.setdefault(name, [])
        self.sample_now()

    def sample_now(self) -> None:
        now = time.monotonic()
        with self._lock:
            for name, pid in self.pids.items():
                mb = memory_mb(pid)
                if mb is not None:
                    self.samples[name].append((now, mb))

    def peaks(self) -> dict[str, float | None]:
        """VmHWM of every process still alive (its true peak, between samples too)."""
        with self._lock:
            return {name: memory_mb(pid, "VmHWM") for name, pid in self.pids.items()}

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()


def _stop_process(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> str | None:
    """SIGINT, then SIGTERM, then SIGKILL, waiting ``grace`` seconds after each.

    Returns how it ended: ``"exit N"`` when it had already ended by itself, else the signal
    that ended it and its exit status (``"SIGINT -> 0"``); None for no process.
    """
    if proc is None:
        return None
    if proc.poll() is not None:
        return f"exit {proc.returncode}"
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
            return f"{sig.name} -> {proc.returncode}"
        except subprocess.TimeoutExpired:
            continue
    return "did not end after SIGKILL"


class _LineReader:
    """Reads a child's text output in a thread: into a queue, a log file and a short tail."""

    def __init__(self, stream: Any, log_path: Path, keep: int = 200) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self.hooks: list[Callable[[str], None]] = []
        self._stream = stream
        self._log = open(log_path, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._stream:
                line = line.rstrip("\n")
                self._log.write(line + "\n")
                self._log.flush()
                self.tail.append(line)
                for hook in self.hooks:
                    hook(line)
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)
            self._log.close()


class Session:
    """The processes of one measurement; use as a context manager (always cleaned up)."""

    def __init__(
        self,
        mode: str,
        folder: Path,
        data_dir: Path,
        *,
        file_types: str = ".dcm,.bin",
        rss_interval: float = 1.0,
        connect_timeout: float = 60.0,
        page: bool = True,
        data_service_args: tuple[str, ...] = (),
    ) -> None:
        if mode not in ("local", "server", "remote"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.folder = folder
        self.data_dir = data_dir
        self.file_types = file_types
        self.connect_timeout = connect_timeout
        self.data_service_args = list(data_service_args)
        self.sampler = RssSampler(rss_interval)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.readers: dict[str, _LineReader] = {}
        self.address = ""
        self.startup_s: float | None = None
        self.server_warnings: list[str] = []
        self.endings: dict[str, str] = {}
        self.shutdown_s: float | None = None
        self._recording_warnings = False
        self._connected = {"data": threading.Event(), "subject": threading.Event()}
        self._want_page = page
        self._page: ExperimenterPage | None = None
        self.page_messages: dict[str, Any] | None = None  # by cmd, once closed
        self.env = dict(os.environ)
        self.env.update(
            {
                "RTCLOUD_SERVER_INFO": str(folder / "server.json"),
                "RTCLOUD_PASSWORD_FILE": str(folder / "users.json"),
                "PYTHONUNBUFFERED": "1",
            }
        )

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Session:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _popen(self, name: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops us in order
            **kwargs,
        )
        self.procs[name] = proc
        self.sampler.add(name, proc.pid)
        return proc

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sampler.start()
        begin = time.monotonic()
        if self.mode in ("server", "remote"):
            self._start_server()
        if self.mode == "remote":
            self._start_services()
        if self._want_page and self.mode != "local":
            self._page = ExperimenterPage(self.address)
        self.startup_s = time.monotonic() - begin

    def _start_server(self) -> None:
        project = self.folder / "proj"
        (project / "conf").mkdir(parents=True, exist_ok=True)
        (project / "proj.py").write_text("print('the benchmark runs its own script')\n")
        (project / "conf" / "proj.toml").write_text(
            'subjectName="bench"\nrunNum=[1]\nscanNum=[1]\n'
        )
        cmd = [sys.executable, "-m", "rtcloud", "serve", "-p", "proj", "-d", str(project)]
        cmd += ["--port", "0", "--test"]  # the test user: the services and the page log in
        if self.mode == "remote":
            cmd += ["--remote"]
        proc = self._popen(
            "server",
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        reader = _LineReader(proc.stdout, self.folder / "server.log")
        reader.hooks.append(self._watch_server_line)
        self.readers["server"] = reader
        deadline = time.monotonic() + self.connect_timeout
        while not self.address:
            try:
                line = reader.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise BenchError(self._failure("the server did not print its address", "server"))
            match = re.search(r"serving project .* at http://([^/\s]+)", line)
            if match:
                self.address = match.group(1)
        info = Path(self.env["RTCLOUD_SERVER_INFO"])
        while not info.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BenchError(self._failure("the server wrote no server-info file", "server"))
            time.sleep(0.02)

    def _watch_server_line(self, line: str) -> None:
        for role, event in self._connected.items():
            if f"{role} service connected" in line:
                event.set()
        if self._recording_warnings and (" WARNING " in line or " ERROR " in line):
            self.server_warnings.append(line)

    def _start_services(self) -> None:
        common = ["-s", self.address, "--test"]
        services = {
            "data_service": [
                "data-service",
                *common,
                "-d",
                str(self.data_dir),
                "-f",
                self.file_types,
                *self.data_service_args,
            ],
            "subject_service": ["subject-service", *common, "-o", str(self.folder / "feedback")],
        }
        for name, args in services.items():
            log = open(self.folder / f"{name}.log", "w", encoding="utf-8")
            try:
                self._popen(
                    name,
                    [sys.executable, "-m", "rtcloud", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()  # the child has its own copy
        deadline = time.monotonic() + self.connect_timeout
        for role, event in self._connected.items():
            name = f"{role}_service"
            while not event.wait(0.05):
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    raise BenchError(
                        self._failure(f"the {role} service did not connect", name, "server")
                    )

    def close(self) -> None:
        """Stop every process (script first, server last); never raises.

        ``self.endings`` tells how each ended (``"SIGINT -> 0"`` is a clean stop) and
        ``self.shutdown_s`` how long stopping took.
        """
        begin = time.monotonic()
        if self._page is not None:
            with contextlib.suppress(Exception):
                self.page_messages = self._page.close()
            self._page = None
        for name in ("script", "data_service", "subject_service", "server"):
            with contextlib.suppress(Exception):
                ending = _stop_process(self.procs.get(name))
                if ending is not None:
                    self.endings[name] = ending
        self.shutdown_s = time.monotonic() - begin
        self.sampler.stop()

    def _failure(self, what: str, *names: str) -> str:
        parts = [what]
        for name in names:
            proc = self.procs.get(name)
            status = None if proc is None else proc.poll()
            parts.append(f"--- {name} (exit status {status}), last lines:")
            if name in self.readers:
                parts.extend(list(self.readers[name].tail)[-30:])
            else:
                log = self.folder / f"{name}.log"
                if log.exists():
                    parts.extend(log.read_text(errors="replace").splitlines()[-30:])
        return "\n".join(parts)

    # ------------------------------------------------------------------ the script

    def run_script(
        self,
        spec: dict[str, Any],
        timeout: float,
        on_ready: Callable[[dict[str, Any]], None] | None = None,
        on_volume: Callable[[list[Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Run ``worker.py`` with ``spec``; return its result, with RSS and timing windows.

        Raises :class:`BenchError` if the script fails or says nothing for ``timeout``
        seconds (a hang of the system under test).
        """
        spec_path = self.folder / "spec.json"
        spec_path.write_text(json.dumps(spec))
        proc = self._popen(
            "script",
            [sys.executable, str(WORKER), str(spec_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,
        )
        reader = _LineReader(proc.stdout, self.folder / "script.log")
        self.readers["script"] = reader
        deadline = time.monotonic() + timeout
        result: dict[str, Any] | None = None
        ready_at = None
        self._recording_warnings = True
        while result is None:
            try:
                line = reader.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                names = ("script", "server") if "server" in self.procs else ("script",)
                raise BenchError(
                    self._failure(f"the script did not finish within {timeout:.0f} s", *names)
                ) from None
            if line is None:
                names = ("script", "server") if "server" in self.procs else ("script",)
                raise BenchError(self._failure("the script ended without a result", *names))
            kind, _, payload = line.partition(" ")
            if kind == "READY":
                ready_at = time.monotonic()
                self.sampler.sample_now()
                if on_ready is not None:
                    on_ready(json.loads(payload))
            elif kind == "V" and on_volume is not None:
                on_volume(json.loads(payload))
            elif kind == "RESULT":
                result = json.loads(payload)
        done_at = time.monotonic()
        self._recording_warnings = False
        self.sampler.sample_now()
        result["hwm_mb"] = self.sampler.peaks()
        result["window"] = (ready_at if ready_at is not None else done_at, done_at)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.write("exit\n")
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            _stop_process(proc)
        return result
