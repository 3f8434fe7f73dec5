"""NetworkProxy against real sockets: delay, bandwidth, stalls, cuts and refusals."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from rtcloud.simulate.network import NetworkProxy


class _Echo(socketserver.BaseRequestHandler):
    received: list[bytes] = []  # what the server got, connection by connection

    def handle(self):
        got = bytearray()
        try:
            while True:
                try:
                    data = self.request.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                got += data
                try:
                    self.request.sendall(data)
                except OSError:  # the test cut the link: nothing to echo to
                    return
        finally:
            _Echo.received.append(bytes(got))


@pytest.fixture
def echo():
    _Echo.received = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def recv_exactly(sock, n):
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            break
        out += data
    return bytes(out)


def test_delay_makes_the_round_trip(echo):
    with (
        NetworkProxy(echo, delay=0.05) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock,
    ):
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"  # the first exchange, warm
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        rtt = time.monotonic() - started
        assert 0.1 <= rtt < 0.5  # 50 ms each way


def test_rate_caps_the_bandwidth(echo):
    payload = bytes(400_000)
    with (
        NetworkProxy(echo, rate=1_000_000) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        started = time.monotonic()
        threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
        assert recv_exactly(sock, len(payload)) == payload
        took = time.monotonic() - started
        assert took >= 0.35  # 400 kB at 1 MB/s each way (pipelined): at least 0.4 s


def test_stall_holds_bytes_until_resume(echo):
    with (
        NetworkProxy(echo) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock,
    ):
        proxy.stall()
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(4)
        proxy.resume()
        sock.settimeout(5)
        assert recv_exactly(sock, 4) == b"held"


def test_cut_resets_and_refuse_keeps_the_path_down(echo):
    with NetworkProxy(echo) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.cut()
        with pytest.raises(OSError):
            for _ in range(50):  # the reset shows on the next send or receive
                sock.sendall(b"y")
                if not sock.recv(1):
                    raise ConnectionResetError("closed")
        sock.close()
        proxy.refuse(True)
        with pytest.raises(OSError):  # at connect, send or receive: the reset is quick
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as refused:
                refused.sendall(b"z")
                if not refused.recv(1):
                    raise ConnectionResetError("closed")
        proxy.refuse(False)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            again.sendall(b"ok")
            assert recv_exactly(again, 2) == b"ok"


def test_cut_mid_message_delivers_half(echo):
    with (
        NetworkProxy(echo) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock,
    ):
        proxy.cut_mid_message()
        sock.sendall(b"0123456789")
        got = b""
        try:
            while True:
                data = sock.recv(100)
                if not data:
                    break
                got += data
        except OSError:
            pass
        assert got in (b"", b"01234")  # the reset, perhaps after the half's echo
        assert proxy.connections == 0
    deadline = time.monotonic() + 5
    while not _Echo.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _Echo.received == [b"01234"]  # half the message reached the server
