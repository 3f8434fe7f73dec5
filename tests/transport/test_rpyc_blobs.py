"""The side channel of the script-to-server hop: large arguments and results beside RPyC."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from rtcloud.errors import ProtocolError, ServiceUnavailableError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.rpc.codec import Encoded
from rtcloud.transport.rpyc_blobs import (
    BLOB_THRESHOLD,
    TICKET_BYTES,
    BlobClient,
    BlobServer,
    BlobStore,
)

SECRET = b"s" * 32


@pytest.fixture
def blob_server():
    server = BlobServer(BlobStore(), SECRET)
    server.start()
    yield server
    server.stop()


def test_values_go_both_ways_as_parts(blob_server):
    client = BlobClient("127.0.0.1", blob_server.port, SECRET)
    try:
        value = {"file": os.urandom(3 << 20), "array": np.arange(300_000.0), "n": 1}
        ticket = client.upload(Encoded.of(value))
        assert len(ticket) == TICKET_BYTES and blob_server.values_received == 1
        parked = blob_server.store.take(ticket)
        assert parked is not None
        back = parked.decode()
        assert back["file"] == value["file"] and back["n"] == 1
        assert np.array_equal(back["array"], value["array"])
        assert all(type(p) is bytes for pieces in parked.buffers for p in pieces)
        ticket = blob_server.store.put(parked)
        fetched = client.fetch(ticket)
        assert fetched.decode()["file"] == value["file"]
        with pytest.raises(ProtocolError, match="no longer holds"):
            client.fetch(ticket)  # a ticket is good once
        with pytest.raises(ProtocolError, match="no longer holds"):
            client.fetch(os.urandom(TICKET_BYTES))
    finally:
        client.close()


def test_wrong_secret_is_refused(blob_server):
    with pytest.raises(ServiceUnavailableError, match="refused"):
        BlobClient("127.0.0.1", blob_server.port, b"x" * 32)


def test_parked_values_expire():
    store = BlobStore(ttl=0.05)
    ticket = store.put(Encoded.of(b"x"))
    time.sleep(0.1)
    assert store.take(ticket) is None
    store.put(Encoded.of(b"y"))  # sweeps the expired ones
    assert len(store) == 1


def test_large_files_cross_the_rpyc_hop_on_the_side_channel(server, tmp_path):
    client = ClientInterface()
    try:
        data = client.dataInterface
        payload = os.urandom(BLOB_THRESHOLD * 3 + 17)
        target = tmp_path / "big.bin"
        data.putFile(str(target), payload)
        assert target.read_bytes() == payload
        assert server.bridge.blobs.values_received == 1
        back = data.getFile(str(target))
        assert type(back) is bytes and back == payload
        assert server.bridge.blobs.values_sent == 1
        assert len(server.bridge.blobs.store) == 0  # nothing left parked
    finally:
        client.close()


def test_a_stopped_side_channel_fails_the_call_clearly(server, tmp_path):
    client = ClientInterface()
    try:
        target = tmp_path / "big.bin"
        target.write_bytes(os.urandom(BLOB_THRESHOLD * 2))
        server.bridge.blobs.stop()
        with pytest.raises(ServiceUnavailableError, match="connection to the project server"):
            client.dataInterface.getFile(str(target))
        assert client.dataInterface.ping() > 0  # small calls still work over RPyC
    finally:
        client.close()


def test_a_silent_side_channel_times_out():
    """The OS-level time bound ends a fetch from a server that accepted but never answers."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        conn, _ = listener.accept()
        conn.recv(64)
        conn.sendall(b"OKAY")  # then says nothing more
        held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    client = BlobClient("127.0.0.1", listener.getsockname()[1], SECRET)
    try:
        client.set_timeout(0.3)
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="did not deliver in time"):
            client.fetch(os.urandom(TICKET_BYTES))
        assert time.monotonic() - start < 3
    finally:
        client.close()
        listener.close()
        for conn in held:
            conn.close()
