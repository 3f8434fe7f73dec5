"""The spool hook: a large binary argument goes to a sink (a file) as its chunks arrive."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from rtcloud.rpc.codec import Spooled
from rtcloud.rpc.messages import Call
from rtcloud.rpc.protocol import ASSEMBLE_MIN, IncomingCall, RpcConnection

MiB = 1 << 20


class Sink(Spooled):
    """Keeps what it is given, and what happened to it."""

    __slots__ = ("chunks", "discarded", "finished")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.finished = False
        self.discarded = False

    def write(self, data: bytes | memoryview) -> None:
        self.chunks.append(bytes(data))

    def finish(self) -> Sink:
        self.finished = True
        return self

    def discard(self) -> None:
        self.discarded = True


class Hook:
    """A spool hook that sinks putFile's data argument and records every question."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[tuple[Call, int, bool]] = []
        self.sinks: list[Sink] = []

    def __call__(self, call: Call, part: bytearray, size: int) -> Sink | None:
        is_data = len(call.args) > 1 and call.args[1] is part
        self.asked.append((call, size, is_data))
        if not (self.answer and call.method == "putFile" and is_data):
            return None
        sink = Sink()
        self.sinks.append(sink)
        return sink


def wired(hook: Hook) -> tuple[RpcConnection, RpcConnection]:
    server, service = RpcConnection("server"), RpcConnection("data-service", spool=hook)
    for a, b in ((server, service), (service, server)):
        while (frame := a.next_frame()) is not None:
            b.receive_frame(frame)
    server.events_received()
    service.events_received()
    return server, service


def deliver(src: RpcConnection, dst: RpcConnection, limit: int | None = None) -> None:
    sent = 0
    while (limit is None or sent < limit) and (frame := src.next_frame()) is not None:
        dst.receive_frame(frame)
        sent += 1


def test_a_large_put_file_goes_to_the_sink_chunk_by_chunk() -> None:
    hook = Hook()
    server, service = wired(hook)
    data = os.urandom(5 * MiB + 123)
    server.call("DataInterface", "putFile", ("/data/out.bin", data), {"compress": False})
    deliver(server, service)
    (event,) = service.events_received()
    assert isinstance(event, IncomingCall) and event.method == "putFile"
    (sink,) = hook.sinks
    assert event.args[0] == "/data/out.bin" and event.args[1] is sink
    assert event.kwargs == {"compress": False}
    assert sink.finished and not sink.discarded
    assert b"".join(sink.chunks) == data and len(sink.chunks) > 1
    ((call, size, is_data),) = hook.asked
    assert call.interface == "DataInterface" and size == len(data) and is_data


def test_small_values_and_declined_sinks_arrive_in_memory() -> None:
    hook = Hook(answer=False)
    server, service = wired(hook)
    small = os.urandom(ASSEMBLE_MIN - 1)
    big = os.urandom(ASSEMBLE_MIN + 5)
    server.call("DataInterface", "putFile", ("/a", small))
    server.call("DataInterface", "putFile", ("/b", big))
    deliver(server, service)
    first, second = service.events_received()
    assert first.args[1] == small and second.args[1] == big
    assert type(second.args[1]) is bytearray  # assembled in memory as before
    assert [size for _, size, _ in hook.asked] == [len(big)]  # asked only for the large one


def test_only_the_argument_the_hook_names_is_sunk() -> None:
    hook = Hook()
    server, service = wired(hook)
    first, second = os.urandom(3 * MiB), os.urandom(4 * MiB)
    server.call("DataInterface", "other", (first, second))
    array = np.arange(ASSEMBLE_MIN, dtype=np.uint8)
    server.call("DataInterface", "putFile", ("/c", array))
    deliver(server, service)
    events = {event.method: event for event in service.events_received()}  # streams interleave
    other, put = events["other"], events["putFile"]
    assert other.args == (first, second) and hook.sinks == []
    assert np.array_equal(put.args[1], array)  # an array needs its bytes: never sunk
    assert sorted(call.method for call, _, _ in hook.asked) == ["other", "other"]


def test_an_aborted_or_lost_stream_discards_its_sink() -> None:
    hook = Hook()
    server, service = wired(hook)
    call_id = server.call("DataInterface", "putFile", ("/d", os.urandom(5 * MiB)))
    deliver(server, service, limit=3)  # begin, the envelope's chunk, the first data chunk
    (sink,) = hook.sinks
    server.cancel(call_id)
    deliver(server, service)
    assert sink.discarded and not sink.finished
    assert service.events_received() == []

    server.call("DataInterface", "putFile", ("/e", os.urandom(5 * MiB)))
    deliver(server, service, limit=3)
    second = hook.sinks[1]
    service.fail_all("link lost")
    assert second.discarded and not second.finished


def _large_dataset() -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.BitsAllocated = 300, 500, 16
    ds.PixelData = b"x" * 300_000
    return ds


@pytest.mark.parametrize("use", ["array", "dicom"])
def test_a_sunk_buffer_used_as_anything_but_bytes_is_a_protocol_error(use: str) -> None:
    from rtcloud.errors import ProtocolError
    from rtcloud.rpc import codec

    payload, buffers = codec.encode_parts(
        np.zeros(ASSEMBLE_MIN, np.uint8) if use == "array" else _large_dataset()
    )
    pieces: list[list[Any]] = [[Sink()] for _ in buffers]
    with pytest.raises(ProtocolError, match="stored aside"):
        codec.decode_parts(payload, pieces)
