"""Property tests (hypothesis): reassembly is exact; hostile input gives only ProtocolError."""

from __future__ import annotations

import datetime as dt
import math
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from rtcloud.errors import ProtocolError
from rtcloud.rpc import codec
from rtcloud.rpc.messages import Abort, Begin, Chunk, Hello, Limits, encode_frame, encode_message
from rtcloud.rpc.protocol import (
    CallFailed,
    CallResult,
    IncomingCall,
    RpcConnection,
    State,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------- values

hashables = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.floats(allow_nan=False),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    hashables
    | st.complex_numbers(allow_nan=False)
    | st.datetimes()
    | st.dates()
    | st.times()
    | st.timedeltas()
    # around the out-of-band threshold (built cheaply: hypothesis is slow at big binaries)
    | st.builds(lambda n, b: b * n, st.integers(7_000, 9_000), st.binary(min_size=8, max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
    ),
    max_leaves=12,
)


def same(a, b) -> bool:
    """Equal, with the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@SETTINGS
@given(values)
def test_codec_round_trip_keeps_values_and_types(value):
    assert same(codec.decode(codec.encode(value)), value)


@SETTINGS
@given(
    st.sampled_from(["u1", "<i2", ">i4", "<f4", ">f8", "<c8", "?", "<M8[s]", "S3", "<U2"]),
    st.lists(st.integers(0, 5), max_size=3),
    st.binary(min_size=0, max_size=4000),
)
def test_arrays_round_trip(dtype, shape, raw):
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    data = (raw * (count * dtype.itemsize // max(len(raw), 1) + 1))[: count * dtype.itemsize]
    assume(len(data) == count * dtype.itemsize)
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    out = codec.decode(codec.encode(array))
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tobytes() == array.tobytes()


@SETTINGS
@given(st.binary(max_size=300))
def test_codec_decode_of_arbitrary_bytes_gives_only_protocol_error(data):
    for decode in (codec.decode, codec.decode_parts):
        try:
            decode(data)
        except ProtocolError:
            pass


# ---------------------------------------------------------------------------------- reassembly


def transfer(src, dst):
    """Every frame from ``src`` to ``dst``; every other one taken as parts (which a transport
    writes one after the other) and joined."""
    as_parts = False
    while True:
        if as_parts:
            parts = src.next_frame_parts()
            frame = None if parts is None else b"".join(parts)
        else:
            frame = src.next_frame()
        if frame is None:
            return
        as_parts = not as_parts
        assert len(frame) <= dst.limits.max_frame_size
        dst.receive_frame(frame)


@SETTINGS
@given(
    sizes=st.lists(st.integers(0, 40_000), min_size=1, max_size=6),
    chunk_size=st.integers(1024, 16_384),
    oob_threshold=st.integers(1, 20_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunked_messages_reassemble_exactly(sizes, chunk_size, oob_threshold, seed):
    limits = Limits(
        chunk_size=chunk_size,
        max_frame_size=chunk_size + 2048,
        max_parts=64,
        oob_threshold=oob_threshold,
    )
    rng = np.random.default_rng(seed)
    blobs = [rng.bytes(n) for n in sizes]
    array = rng.standard_normal(sizes[0] // 8)
    caller, callee = RpcConnection(limits=limits), RpcConnection(limits=limits)
    call_id = caller.call("I", "put", (blobs, array), {"n": len(blobs)})
    transfer(caller, callee)
    transfer(callee, caller)
    (incoming,) = [e for e in callee.events_received() if isinstance(e, IncomingCall)]
    assert incoming.args[0] == blobs and incoming.kwargs == {"n": len(blobs)}
    np.testing.assert_array_equal(incoming.args[1], array)
    callee.send_result(call_id, list(reversed(blobs)))
    transfer(callee, caller)
    (result,) = [e for e in caller.events_received() if isinstance(e, CallResult)]
    assert result.value == list(reversed(blobs))


@SETTINGS
@given(
    sizes=st.lists(st.integers(0, 50_000), min_size=1, max_size=8),
    plan=st.lists(st.tuples(st.sampled_from("abcx"), st.integers(0, 7)), max_size=60),
)
def test_every_call_ends_exactly_once_whatever_the_interleaving(sizes, plan):
    """Random delivery order, cancels and a disconnect: one terminal event per call."""
    limits = Limits(chunk_size=4096, max_frame_size=8192, max_parts=64)
    caller, callee = RpcConnection(limits=limits), RpcConnection(limits=limits)
    expected = {}
    for n in sizes:
        expected[caller.call("I", "get", (n,))] = bytes(range(256)) * (n // 256) + b"x" * (n % 256)
    finished: dict[int, object] = {}

    def collect():
        for event in caller.events_received():
            if isinstance(event, (CallResult, CallFailed)):
                assert event.call_id not in finished, "a call ended twice"
                finished[event.call_id] = event
        for event in callee.events_received():
            if isinstance(event, IncomingCall):
                callee.send_result(event.call_id, expected[event.call_id])

    for action, arg in plan:
        if action == "a":  # deliver some frames caller -> callee
            for _ in range(arg + 1):
                if (frame := caller.next_frame()) is not None:
                    callee.receive_frame(frame)
        elif action == "b":
            for _ in range(arg + 1):
                if (frame := callee.next_frame()) is not None:
                    caller.receive_frame(frame)
        elif action == "c":
            ids = sorted(expected)
            caller.cancel(ids[arg % len(ids)])
        collect()
    if plan and plan[-1][0] == "x":
        caller.fail_all()
        callee.fail_all()
    else:
        for _ in range(1000):
            if not (caller.has_frames_to_send() or callee.has_frames_to_send()):
                break
            transfer(caller, callee)
            collect()
            transfer(callee, caller)
            collect()
    collect()
    assert set(finished) == set(expected)
    for call_id, event in finished.items():
        if isinstance(event, CallResult):
            assert event.value == expected[call_id]


# ---------------------------------------------------------------------------------- hostile input


def _valid_frames():
    conn = RpcConnection("peer", limits=Limits(chunk_size=1024, max_frame_size=4096, max_parts=64))
    conn.call("DataInterface", "getFile", ("/a/b.dcm",), {"timeout": 5.0}, 10.0)
    conn.call(
        "I",
        "m",
        (
            (1, 2),
            {3: {4}},
            dt.datetime(2024, 1, 2, 3, 4, 5),
            np.arange(6, dtype=np.int16).reshape(2, 3),
            2**70,
            1j,
            frozenset({1}),
        ),
    )
    conn.call("I", "big", (bytes(range(256)) * 20,))
    conn.ping()
    return conn.frames_to_send()


VALID = _valid_frames()
HELLO = encode_message(Hello(1, "fuzz"))[0]


def feed(frames, *, hello=True):
    """Feed frames; only ProtocolError may come out, and it closes the connection."""
    conn = RpcConnection(limits=Limits(chunk_size=1024, max_frame_size=4096, max_parts=64))
    if hello:
        conn.receive_frame(HELLO)
    pending = conn.call("I", "waiting")
    try:
        for frame in frames:
            conn.receive_frame(frame)
    except ProtocolError:
        assert conn.state is State.CLOSED
        failed = [e for e in conn.events_received() if isinstance(e, CallFailed)]
        assert [e.call_id for e in failed] == [pending]
    else:
        conn.events_received()
        conn.frames_to_send()


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=5), st.booleans())
def test_arbitrary_bytes_give_only_protocol_errors(frames, hello):
    feed(frames, hello=hello)


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.data())
def test_truncated_frames_give_only_protocol_errors(index, data):
    frame = VALID[index]
    cut = data.draw(st.integers(0, len(frame) - 1))
    feed([*VALID[:index], frame[:cut], *VALID[index + 1 :]])


@SETTINGS
@given(
    st.integers(0, len(VALID) - 1),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_frames_give_only_protocol_errors_or_valid_events(index, flips):
    frame = bytearray(VALID[index])
    for position, value in flips:
        frame[position % len(frame)] = value
    feed([*VALID[:index], bytes(frame), *VALID[index + 1 :]])


stream_frames = st.one_of(
    st.builds(
        Begin,
        st.integers(0, 3),
        st.lists(st.integers(1, 3 << 30), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(Chunk, st.integers(0, 3), st.integers(0, 4), st.binary(min_size=0, max_size=50)),
    st.builds(Abort, st.integers(0, 3)),
)


@SETTINGS
@given(st.lists(stream_frames, max_size=12))
def test_random_stream_frames_give_only_protocol_errors(frames):
    feed([encode_frame(f) for f in frames])


def test_huge_declared_sizes_allocate_nothing_up_front():
    conn = RpcConnection()
    conn.receive_frame(HELLO)
    tracemalloc.start()
    try:
        conn.receive_frame(encode_frame(Begin(1, (2 << 30,))))  # exactly the limit: accepted
        conn.receive_frame(encode_frame(Chunk(1, 0, b"x" * 1000)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert conn.state is State.OPEN
    assert peak < 1 << 20, f"a 2 GiB declaration allocated {peak} bytes"
    try:
        conn.receive_frame(encode_frame(Begin(2, (1,))))  # over the bytes-in-flight budget
    except ProtocolError as exc:
        assert "over the limit" in str(exc)
    else:
        raise AssertionError("a second message over the in-flight budget was accepted")
