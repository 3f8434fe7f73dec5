"""The script-to-server hop over a real RPyC connection: secret, values, errors, timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import rpyc

from rtcloud.errors import (
    AuthenticationError,
    CallTimeout,
    FileWaitTimeout,
    RequestError,
    StateError,
    ValidationError,
)
from rtcloud.interfaces.client import ClientInterface
from rtcloud.transport.rpyc_client import ServerConnection
from rtcloud.watcher.watcher import FileWatcher


def test_script_started_by_hand_finds_the_server(server, tmp_path):
    # The server wrote its connection file under this user's home (the test's private home).
    info = json.loads(server.info_path.read_text())
    assert info["host"] == "127.0.0.1" and info["rpycPort"] == server.bridge.port
    client = ClientInterface()
    try:
        assert client.isUsingProjectServer()
        assert not client.isDataRemote() and not client.isSubjectRemote()
        data = client.dataInterface
        target = tmp_path / "blob.bin"
        payload = bytes(range(256)) * 4000
        data.putFile(str(target), payload)
        back = data.getFile(str(target))
        assert type(back) is bytes and back == payload
        assert data.listFiles(str(tmp_path / "*.bin")) == [str(target)]
        assert isinstance(data.ping(), float)
        client.subjInterface.setResult(1, 0, 0.5, 10)
        assert server.subject.dequeueResult()["value"] == 0.5
        client.webInterface.plotDataPoint(1, 3, 2.5)
        assert server.web.getPreviousDataPoints() == [[{"x": 3, "y": 2.5}]]
        assert data.isRunningRemote() is False
    finally:
        client.close()


def test_errors_keep_their_types(server, tmp_path):
    client = ClientInterface()
    try:
        data = client.dataInterface
        with pytest.raises(FileNotFoundError, match="does not exist"):
            data.getFile(str(tmp_path / "missing.txt"))
        with pytest.raises(ValidationError, match="unknown stream id"):
            data.getImageData(99, 0, timeout=1)
        with pytest.raises(StateError, match="initWatch"):
            data.watchFile("x.dcm", timeout=1)
        data.initWatch(str(tmp_path), "*.dcm", 0)
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            data.watchFile("never.dcm", timeout=0.5)
        assert isinstance(info.value, FileWaitTimeout)
        assert "never.dcm" in str(info.value)
        assert time.monotonic() - start < 5
        with pytest.raises(ValidationError, match="runId"):
            client.webInterface.plotDataPoint(0, 1, 1.0)
        with pytest.raises(RequestError, match="runId"):  # RT-Cloud's scripts catch this
            client.webInterface.plotDataPoint(0, 1, 1.0)
        assert not hasattr(data, "_resolve")  # only exposed methods exist on the proxy
        for name in ("_resolve", "__init__", "close", "allowedDirs"):
            with pytest.raises(ValidationError, match="cannot be called remotely"):
                client.rpcConn.call("DataInterface", name, (), {})
    finally:
        client.close()


def test_rpc_timeout_bounds_a_call(server, tmp_path):
    client = ClientInterface(rpyc_timeout=30)
    try:
        data = client.dataInterface
        data.initWatch(str(tmp_path), "*.dcm", 0)
        start = time.monotonic()
        with pytest.raises(CallTimeout):
            data.watchFile("late.dcm", timeout=10, rpc_timeout=0.5)
        assert time.monotonic() - start < 3
    finally:
        client.close()


def test_a_long_wait_does_not_block_other_threads(server, tmp_path, monkeypatch):
    waiting_in_server = threading.Event()
    wait_until = FileWatcher.wait_until

    def observed(self, *args, **kwargs):  # the real wait, and a signal that it began
        waiting_in_server.set()
        return wait_until(self, *args, **kwargs)

    monkeypatch.setattr(FileWatcher, "wait_until", observed)
    client = ClientInterface()
    try:
        data = client.dataInterface
        data.initWatch(str(tmp_path), "*.dcm", 0)
        waiting = threading.Thread(
            target=lambda: pytest.raises(TimeoutError, data.watchFile, "slow.dcm", timeout=3)
        )
        waiting.start()
        assert waiting_in_server.wait(10), "watchFile never reached the server"
        start = time.monotonic()
        for tr in range(20):
            client.subjInterface.setResult(1, tr, float(tr), 0)
        elapsed = time.monotonic() - start
        assert waiting.is_alive(), "the wait must still be going on"
        waiting.join()
        assert elapsed < 1.0, f"setResult calls waited behind watchFile ({elapsed:.2f} s)"
    finally:
        client.close()


def test_clients_without_the_secret_are_refused(server):
    with pytest.raises(AuthenticationError, match="refused"):
        ServerConnection("127.0.0.1", server.bridge.port, b"x" * 32)
    # Stock RPyC, speaking first without the handshake, gets nothing.
    conn = None
    with pytest.raises((EOFError, TimeoutError)):
        conn = rpyc.connect("127.0.0.1", server.bridge.port, config={"sync_request_timeout": 3})
        conn.root.describe()
    if conn is not None:
        conn.close()
    with socket.create_connection(("127.0.0.1", server.bridge.port), timeout=5) as sock:
        sock.sendall(b"RTCLOUD1" + b"\0" * 32)
        assert sock.recv(4) == b"DENY"


def test_no_server_and_no_terminal_fails_clearly(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(StateError, match="yesToPrompts=True"):
        ClientInterface()
    client = ClientInterface(yesToPrompts=True)
    assert not client.isUsingProjectServer() and not client.isDataRemote()
    client.close()
