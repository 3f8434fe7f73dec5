"""StreamedValue: a result handed on while its bytes still arrive (fed by one thread, read
by others), and the side channel sending it on as it comes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rtcloud.errors import CallTimeout, ServiceUnavailableError
from rtcloud.rpc import codec
from rtcloud.transport.rpyc_blobs import BlobClient, BlobServer, BlobStore
from rtcloud.transport.streamed import StreamedValue

SECRET = b"s" * 32


def streamed(value, deadline=10.0):
    """``value`` encoded, as a StreamedValue with nothing of its buffers yet; and them."""
    encoded = codec.Encoded.of(value)
    parts = [b"".join(pieces) for pieces in encoded.buffers]
    out = StreamedValue(encoded.payload, [len(p) for p in parts], time.monotonic() + deadline)
    return out, parts


def feed(target, parts, piece=100_000, pause=0.0):
    for part in parts:
        for at in range(0, len(part), piece):
            if pause:
                time.sleep(pause)
            target.add(memoryview(part)[at : at + piece])


def test_a_reader_gets_each_piece_as_it_arrives():
    big = os.urandom(1_000_000)
    value, parts = streamed({"pixels": big, "n": 3})
    got = []
    reader = threading.Thread(target=lambda: got.extend(value.iter_part(1)))
    reader.start()
    value.add(memoryview(parts[0])[:400_000])
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"".join(got) == big[:400_000] and reader.is_alive()  # waits for the rest
    value.add(memoryview(parts[0])[400_000:])
    reader.join(5)  # the part is whole: its reader is done, before the value is
    assert not reader.is_alive() and b"".join(got) == big and not value.done
    value.finish()
    assert value.decode() == {"pixels": big, "n": 3}
    assert value.nbytes == codec.Encoded.of({"pixels": big, "n": 3}).nbytes


def test_waiters_get_the_failure_and_callbacks_run_once():
    value, parts = streamed({"pixels": os.urandom(500_000)})
    seen = []
    value.add_done_callback(seen.append)
    errors = []

    def read():
        try:
            list(value.iter_part(1))
        except ServiceUnavailableError as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    value.add(memoryview(parts[0])[:1000])
    value.fail(ServiceUnavailableError("the data service disconnected"))
    value.finish()  # too late: the failure stands
    for reader in readers:
        reader.join(5)
    assert len(errors) == 3 and len(seen) == 1 and isinstance(seen[0], ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        value.decode()
    late = []
    value.add_done_callback(late.append)  # already ended: at once
    assert late == seen


def test_empty_parts_are_whole_from_the_start():
    # a peer may announce empty buffers, anywhere; each reads as empty, none as cut short
    value = StreamedValue(b"payload", [3, 0, 2, 0], time.monotonic() + 5)
    assert list(value.iter_part(2)) == []  # nothing to wait for
    value.add(b"abc")
    value.add(b"de")
    value.finish()
    assert [b"".join(value.iter_part(i)) for i in range(1, 5)] == [b"abc", b"", b"de", b""]
    assert value.buffers == ((b"abc",), (), (b"de",), ())


def test_waiting_past_the_deadline_is_a_call_timeout():
    value, _ = streamed({"pixels": os.urandom(200_000)}, deadline=0.2)
    started = time.monotonic()
    with pytest.raises(CallTimeout, match="did not arrive whole"):
        value.decode()
    assert 0.15 < time.monotonic() - started < 2


def test_the_side_channel_sends_a_value_on_while_it_arrives():
    """A real side-channel client fetches the value while another thread feeds it; a value
    that fails on the way closes the connection instead of sending a wrong value."""
    server = BlobServer(BlobStore(), SECRET)
    server.start()
    try:
        big = os.urandom(3_000_000)
        value, parts = streamed({"pixels": big})
        ticket = server.store.put(value)
        feeder = threading.Thread(target=feed, args=(value, parts), kwargs={"pause": 0.002})
        feeder.start()
        client = BlobClient(server.host, server.port, SECRET)
        fetched = client.fetch(ticket)  # starts before the value is whole
        feeder.join(5)
        value.finish()
        assert fetched.decode() == {"pixels": big}
        client.close()

        broken, broken_parts = streamed({"pixels": big})
        ticket = server.store.put(broken)
        broken.add(memoryview(broken_parts[0])[:100_000])
        threading.Timer(0.1, broken.fail, [ServiceUnavailableError("gone")]).start()
        client = BlobClient(server.host, server.port, SECRET)
        with pytest.raises(ConnectionError):
            client.fetch(ticket)
        client.close()
    finally:
        server.stop()
