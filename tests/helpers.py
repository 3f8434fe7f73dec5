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


def start_service(kind, server, *extra, password="test", user="test"):
    """Start ``rtcloud data-service`` or ``subject-service`` as a process logged in to
    ``server`` (a ProjectServer); its output is piped."""
    env = dict(os.environ, RTCLOUD_PASSWORD=password, PYTHONUNBUFFERED="1")
    host = server.url.split("//")[1].rstrip("/")
    cmd = [sys.executable, "-m", "rtcloud", kind, "-s", host, "-u", user, *extra]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
