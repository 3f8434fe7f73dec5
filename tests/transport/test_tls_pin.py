"""The fingerprint pin is checked in the TLS handshake, before any byte of a request.

An impostor (a real TLS server on 127.0.0.1 with another certificate) records every byte it
receives after its handshake. A service pinned to the real server's certificate must send it
none: no login form with the password, no WebSocket upgrade with a session cookie.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from rtcloud.errors import AuthenticationError, ConfigError
from rtcloud.feedback import FeedbackClient
from rtcloud.tls import client_context, ensure_self_signed
from rtcloud.transport.ws_client import ServiceClient
from rtcloud.transport.ws_socket import WsSocket

PASSWORD = "correct-horse-battery-staple"


class Impostor:
    """A TLS server with its own certificate that keeps what clients send it."""

    def __init__(self, folder) -> None:
        cert, key, self.fingerprint = ensure_self_signed(folder)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.received = bytearray()
        self.handshakes = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(1)
        try:
            with self._context.wrap_socket(sock, server_side=True) as tls:
                with self._lock:
                    self.handshakes += 1
                while data := tls.recv(65536):
                    with self._lock:
                        self.received += data
        except (OSError, ssl.SSLError):
            pass  # the client hung up: that is what a pinned client should do

    def close(self) -> None:
        self._listener.close()
        for thread in self._threads:
            thread.join(10)


@pytest.fixture
def impostor(tmp_path):
    server = Impostor(tmp_path / "impostor")
    yield server
    server.close()


@pytest.fixture
def real_fingerprint(tmp_path):
    return ensure_self_signed(tmp_path / "real")[2]


def test_service_login_sends_nothing_to_an_impostor(impostor, real_fingerprint):
    client = ServiceClient(
        impostor.address,
        "data",
        {},
        username="alice",
        password=PASSWORD,
        fingerprint=real_fingerprint,
    )
    with pytest.raises(AuthenticationError, match="fingerprint"):
        client.run_forever()  # a wrong pin stops the service instead of retrying
    impostor.close()
    assert impostor.handshakes == 1  # it did reach the impostor...
    assert bytes(impostor.received) == b""  # ...and sent it nothing


def test_websocket_upgrade_sends_nothing_to_an_impostor(impostor, real_fingerprint):
    context = client_context(fingerprint=real_fingerprint)
    with pytest.raises(AuthenticationError, match="fingerprint"):
        WsSocket.connect(
            f"wss://{impostor.address}/ws/service/data",
            headers={"Cookie": "rtcloud_session=secret-session"},
            ssl_context=context,
            open_timeout=5,
        )
    impostor.close()
    assert impostor.handshakes == 1
    assert bytes(impostor.received) == b""


def test_feedback_client_sends_nothing_to_an_impostor(impostor, real_fingerprint):
    feedback = FeedbackClient(impostor.address, "alice", PASSWORD, fingerprint=real_fingerprint)
    with pytest.raises(AuthenticationError, match="fingerprint"):
        feedback.start(timeout=10)
    impostor.close()
    assert PASSWORD.encode() not in impostor.received
    assert bytes(impostor.received) == b""


def test_the_pinned_certificate_itself_is_accepted(impostor):
    # The same client code with the impostor's own fingerprint gets through the handshake
    # and sends its request: the pin is what refuses, nothing else.
    client = ServiceClient(
        impostor.address,
        "data",
        {},
        username="alice",
        password=PASSWORD,
        fingerprint=impostor.fingerprint,
    )
    with pytest.raises(OSError):
        client.login()  # the impostor never answers; the request was sent
    impostor.close()
    assert PASSWORD.encode() in impostor.received


@pytest.mark.parametrize("address", ["10.1.2.3:8888", "scanner-pc.example.org:443"])
def test_a_service_will_not_send_its_password_in_clear_beyond_this_computer(address):
    with pytest.raises(ConfigError, match="--tls"):
        ServiceClient(address, "data", {}, username="alice", password=PASSWORD)
