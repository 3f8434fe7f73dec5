"""Helpers of the fault tests: rtcloud processes to kill, stop and restart.

A :class:`Proc` is one ``python -m rtcloud ...`` process whose output is read line by line
in a thread (waiters are woken by a condition, not by polling the pipe); a
:class:`ServerProcess` is ``rtcloud serve`` in its own process, with its address parsed
from its output and its connection file waited for.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from rtcloud.server.app import COOKIE_NAME


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a parent that is gone counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Proc:
    """One rtcloud process; its output lines are kept in ``lines``."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.lines: list[str] = []
        self._new = threading.Condition()
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtcloud", *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        proc.stdout.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_line(self, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match[str]:
        """The first output line from index ``start`` on matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new:
            index = start
            while True:
                while index < len(self.lines):
                    found = regex.search(self.lines[index])
                    if found:
                        return found
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and index >= len(self.lines)):
                    tail = "\n".join(self.lines[-30:])
                    raise AssertionError(f"{self.name}: no line matching {pattern!r}:\n{tail}")
                self._new.wait(min(remaining, 0.5))

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.proc = self._spawn()


def rtcloud_env(folder: Path) -> dict[str, str]:
    """The environment of rtcloud processes of one test: nothing of ~/.rtcloud is used."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RTCLOUD_PASSWORD="test")
    env["RTCLOUD_SERVER_INFO"] = str(folder / "server.json")
    env["HOME"] = str(folder)
    return env


class ServerProcess(Proc):
    """``rtcloud serve -p proj -d PROJECT --port 0 --test [flags]`` in its own process."""

    def __init__(self, project_dir: Path, folder: Path, *flags: str, port: int = 0) -> None:
        self.folder = folder
        args = ["serve", "-p", "proj", "-d", str(project_dir), "--port", str(port), "--test"]
        super().__init__([*args, *flags], rtcloud_env(folder), "server")
        self.address = self.wait_for_line(r"serving project .* at http://([^/\s]+)").group(1)
        info = folder / "server.json"
        deadline = time.monotonic() + 20
        while not info.exists():  # written just before the address is printed
            assert time.monotonic() < deadline, "the server wrote no server.json"
            time.sleep(0.02)

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def cookie(self) -> str:
        with httpx.Client(base_url=f"http://{self.address}", timeout=10) as client:
            response = client.post(
                "/login", data={"username": "test", "password": "test", "next": "/"}
            )
            return response.cookies[COOKIE_NAME]

    def run_script(self, script: str = "mainScript") -> None:
        """Press Run (as the page does, over /ws/ui); return once the script is running."""
        with connect(
            f"ws://{self.address}/ws/ui",
            additional_headers={"Cookie": f"{COOKIE_NAME}={self.cookie()}"},
            open_timeout=10,
        ) as ws:
            ws.send(json.dumps({"cmd": "runScript", "script": script}))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if message.get("cmd") == "runStatus" and message.get("state") == "running":
                    return
                if message.get("cmd") == "userError":
                    raise AssertionError(f"the server refused to run: {message['error']}")
        raise AssertionError("the script did not start")
