"""Several servers under one OS user: each script reaches its own server, and no other.

Real servers on 127.0.0.1 (in threads, and ``rtcloud serve`` as a process for SIGTERM),
real scripts as processes. The tests' home folder is private (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from helpers import wait_for
from rtcloud.server.runner import RunState
from rtcloud.transport.discovery import servers_dir

BY_HAND = textwrap.dedent(
    """
    from rtCommon.clientInterface import ClientInterface
    ci = ClientInterface(yesToPrompts=True)
    print("server" if ci.isUsingProjectServer() else "local", flush=True)
    if ci.isUsingProjectServer():
        ci.webInterface.plotDataPoint(7, 0, 42.0)
    ci.close()
    """
)


def run_by_hand(env=None):
    return subprocess.run(
        [sys.executable, "-c", BY_HAND],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def run_main_script(server):
    asyncio.run_coroutine_threadsafe(server.run_script("mainScript"), server.loop).result(10)
    wait_for(
        lambda: server.runner.status.state in (RunState.COMPLETE, RunState.FAILED),
        timeout=60,
        what="the run to end",
    )
    assert server.runner.status.state == RunState.COMPLETE, server.runner.status.message


def points(server):
    return server.web.getPreviousDataPoints()


def test_each_server_keeps_its_own_file_and_its_scripts(server_factory):
    first = server_factory()
    second = server_factory()  # started last: it used to overwrite the first one's file
    run_main_script(first)  # started by the first server's Run button
    assert points(first) and not points(second)
    run_main_script(second)
    assert points(second) and len(points(first)) == len(points(second))
    assert first.info_path != second.info_path
    assert first.info_path.is_file() and second.info_path.is_file()


def test_a_script_by_hand_with_several_servers_must_choose(server_factory):
    first = server_factory()
    second = server_factory()
    result = run_by_hand()
    assert result.returncode != 0
    assert "2 rtcloud servers are running" in result.stderr
    for server in (first, second):
        assert server.url in result.stderr and str(server.info_path) in result.stderr
    assert not points(first) and not points(second)
    chosen = run_by_hand({"RTCLOUD_SERVER_INFO": str(second.info_path)})
    assert chosen.stdout.strip() == "server", chosen.stderr
    assert points(second) and not points(first)


def test_a_script_by_hand_finds_the_one_server_and_skips_dead_ones(server_factory):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    servers_dir().mkdir(parents=True, exist_ok=True)
    stale = servers_dir() / "1-1.json"
    stale.write_text(json.dumps({"host": "127.0.0.1", "rpycPort": dead_port, "secret": "00" * 32}))
    server = server_factory()
    result = run_by_hand()
    assert result.stdout.strip() == "server", result.stderr
    assert points(server)
    assert not stale.exists()  # nothing listened there: a server long gone


def test_a_script_whose_server_is_gone_says_so(server_factory):
    server = server_factory()
    info = json.loads(server.info_path.read_text())
    server.stop()
    result = run_by_hand({"RTCLOUD_SERVER": json.dumps(info)})
    assert result.returncode != 0
    assert "no longer answers" in result.stderr and "local" not in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_removes_the_servers_file(project_dir, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtcloud", "serve", "-p", "proj", "-d", str(project_dir)]
        + ["--port", "0", "--test", "--password-file", str(tmp_path / "users.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: any(servers_dir().glob("*.json")), timeout=60, what="its file")
        (info_file,) = servers_dir().glob("*.json")
        assert json.loads(info_file.read_text())["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert not info_file.exists(), output
    assert "server stopped" in output
