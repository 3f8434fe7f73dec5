"""Resource bounds: file patterns cannot make a service allocate gigabytes, and peers cannot
together make the server hold more unfinished messages than one large message's worth.
"""

from __future__ import annotations

import contextlib
import threading
import tracemalloc

import pytest

from helpers import wait_for
from rtcloud.errors import ValidationError
from rtcloud.interfaces.data import DataInterface
from rtcloud.rpc.protocol import RpcConnection
from rtcloud.transport.budget import SERVER_BUDGET
from rtcloud.transport.ws_client import ServiceClient
from rtcloud.transport.ws_socket import LinkClosed, WsSocket


@pytest.mark.parametrize(
    "pattern",
    [
        "{TR:0999999999d}.dcm",  # zero-padded to a billion digits: 1 GB per name
        "{TR:>999999999}.dcm",
        "{TR:.999999999f}.dcm",
        "scan_{TR:{TR}}.dcm",  # a width taken from another field
        "x" * 300 + "{TR:03d}.dcm",  # longer than any file name
    ],
)
def test_patterns_that_would_build_huge_names_are_refused(tmp_path, pattern):
    data = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match="pattern"):
            data.initScannerStream(str(tmp_path), pattern, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        data.close()
    assert peak < 1 << 20, f"{peak} bytes allocated to refuse {pattern[:40]!r}"


def test_ordinary_patterns_still_work(tmp_path):
    data = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        for pattern in ["001_000013_{TR:06d}.dcm", "{TR}.dcm", "scan_{TR:>4}.dcm", "*.dcm"]:
            assert data.initScannerStream(str(tmp_path), pattern, 0) > 0
    finally:
        data.close()


class StalledPeer:
    """A subject service that declares one large message and sends only its first chunk."""

    def __init__(self, server, size):
        address = server.url.split("//")[1].rstrip("/")
        session = ServiceClient(address, "subject", {}, username="test", password="test").login()
        url = server.url.replace("http://", "ws://") + "ws/service/subject"
        self.ws = WsSocket.connect(url, headers={"Authorization": f"Bearer {session}"})
        self.conn = RpcConnection("stalled peer")
        self.conn.call("SubjectInterface", "noSuchMethod", (b"\0" * size,), {}, deadline_s=60)
        sent = 0
        try:
            while sent < (1 << 20):  # the hello, the message's first frame, one chunk
                frame = self.conn.next_frame()
                assert frame is not None
                self.ws.send(frame)
                sent += len(frame)
        except (LinkClosed, OSError):
            pass  # refused before its first chunk went out

    def finish(self):
        while (frame := self.conn.next_frame()) is not None:
            self.ws.send(frame)

    def dropped(self, timeout=10.0):
        """True once the server has closed this link (False if it keeps it past ``timeout``)."""

        def read():
            with contextlib.suppress(LinkClosed, OSError):
                for _ in self.ws.messages():
                    pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        return not reader.is_alive()

    def close(self):
        self.ws.close()


def held():
    """MiB of unfinished messages the server holds (a message is its data plus a header)."""
    return SERVER_BUDGET.used >> 20


def test_unfinished_messages_are_bounded_across_connections(server_factory, monkeypatch):
    monkeypatch.setattr(SERVER_BUDGET, "limit", 12 << 20)  # small, for the test's memory
    server = server_factory(subject_remote=True)
    first = StalledPeer(server, 8 << 20)
    peers = [first]
    try:
        wait_for(lambda: held() == 8, what="the first message reserved")
        second = StalledPeer(server, 8 << 20)  # 16 MiB together: over the process's 12
        peers.append(second)
        assert second.dropped()
        assert held() == 8
        first.finish()  # the first message completes: its bytes are given back
        wait_for(lambda: SERVER_BUDGET.used == 0, what="the first message's bytes returned")
        third = StalledPeer(server, 8 << 20)
        peers.append(third)
        wait_for(lambda: held() == 8, what="the third message reserved")
        third.close()  # a dropped link gives its bytes back too
        wait_for(lambda: SERVER_BUDGET.used == 0, what="the dropped link's bytes returned")
    finally:
        for peer in peers:
            peer.close()
