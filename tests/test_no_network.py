"""No test downloads anything: connections beyond loopback fail in every test."""

from __future__ import annotations

import socket

import pytest


def test_a_connection_beyond_loopback_is_refused():
    with pytest.raises(PermissionError, match="tests must not use the network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        with pytest.raises(PermissionError, match="tests must not use the network"):
            sock.connect_ex(("2001:db8::1", 80, 0, 0))  # the documentation prefix


def test_loopback_still_works():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with socket.create_connection(("localhost", port), timeout=5):
            pass
