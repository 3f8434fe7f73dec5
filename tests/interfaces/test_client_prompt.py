"""ClientInterface without a server: the terminal prompt, answered in a real pseudo-terminal."""

from __future__ import annotations

import os
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX-only")

SCRIPT = (
    "from rtcloud.interfaces.client import ClientInterface\n"
    "try:\n"
    "    ci = ClientInterface()\n"
    "    print('LOCAL', ci.isUsingProjectServer(), flush=True)\n"
    "except ConnectionError as exc:\n"
    "    print('DECLINED', type(exc).__name__, flush=True)\n"
)


def run_in_pty(answer: str) -> str:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: a Python with the pty as its terminal
        os.execv(sys.executable, [sys.executable, "-c", SCRIPT])
    output = b""
    deadline = time.monotonic() + 30
    answered = False
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"(y/n)" in output:
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    return output.decode(errors="replace")


def test_answering_yes_uses_local_files():
    out = run_in_pty("y")
    assert "Continue with local files? (y/n)" in out
    assert "LOCAL False" in out


def test_answering_no_fails_with_a_connection_error():
    out = run_in_pty("n")
    assert "DECLINED ServiceUnavailableError" in out
