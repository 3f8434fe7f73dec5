"""rtcloud.rpc.protocol: RpcConnection fed frames, and two connections wired back to back."""

from __future__ import annotations

import os
import sys
import tracemalloc

import msgpack
import numpy as np
import pytest

from rtcloud.errors import (
    CallCancelled,
    CallTimeout,
    ProtocolError,
    RemoteCallError,
    SerializationError,
    ServiceUnavailableError,
    ValidationError,
)
from rtcloud.rpc import codec
from rtcloud.rpc.messages import (
    Abort,
    Begin,
    Call,
    Chunk,
    Hello,
    Limits,
    Result,
    decode_frame,
    encode_frame,
    encode_message,
)
from rtcloud.rpc.protocol import (
    ASSEMBLE_MIN,
    CallFailed,
    CallResult,
    HelloReceived,
    IncomingCall,
    IncomingCallCancelled,
    PingReceived,
    PongReceived,
    ResultBegun,
    ResultPiece,
    RpcConnection,
    State,
)

MiB = 1 << 20


def transfer(src: RpcConnection, dst: RpcConnection) -> int:
    """Move every queued frame from src to dst; return how many."""
    count = 0
    while (frame := src.next_frame()) is not None:
        dst.receive_frame(frame)
        count += 1
    return count


def exchange(a: RpcConnection, b: RpcConnection) -> None:
    while transfer(a, b) + transfer(b, a):
        pass


@pytest.fixture
def pair():
    """A server-side and a service-side connection that have exchanged hellos."""
    server, service = RpcConnection("server"), RpcConnection("data-service")
    exchange(server, service)
    assert server.events_received() == [HelloReceived("data-service", 1)]
    assert service.events_received() == [HelloReceived("server", 1)]
    return server, service


def raw_peer(conn: RpcConnection) -> RpcConnection:
    """Feed ``conn`` a hello, as a hand-written peer would, and drop its events."""
    conn.receive_frame(encode_message(Hello(1, "raw"))[0])
    conn.events_received()
    return conn


def kinds(frames):
    return [type(decode_frame(f)).__name__ for f in frames]


# ---------------------------------------------------------------------------------- basics


def test_first_frame_is_hello_and_peer_name_is_known(pair):
    server, service = pair
    assert decode_frame(RpcConnection("x").next_frame()) == Hello(1, "x")
    assert server.peer_name == "data-service" and service.peer_name == "server"
    assert server.state is State.OPEN


def test_call_and_result(pair):
    server, service = pair
    call_id = server.call("DataInterface", "getFile", ["/x.dcm"], {"flag": (1, 2)}, 30.0)
    assert server.pending_calls == {call_id}
    transfer(server, service)
    (incoming,) = service.events_received()
    assert incoming == IncomingCall(
        call_id, "DataInterface", "getFile", ("/x.dcm",), {"flag": (1, 2)}, 30.0
    )
    assert service.incoming_calls == {call_id}
    assert service.send_result(call_id, {"data": b"\x00\x01", "n": np.int16(3)})
    transfer(service, server)
    assert server.events_received() == [CallResult(call_id, {"data": b"\x00\x01", "n": 3})]
    assert server.pending_calls == frozenset() and service.incoming_calls == frozenset()
    assert not service.send_result(call_id, "again")  # answered once only


def test_either_side_may_call_and_ids_do_not_collide(pair):
    server, service = pair
    a = server.call("SubjectInterface", "setResult", (1, 0, 0.5))
    b = service.call("Server", "log", ("hello",))
    assert a == b == 1
    exchange(server, service)
    (to_service,) = service.events_received()
    (to_server,) = server.events_received()
    assert to_service.method == "setResult" and to_server.method == "log"
    server.send_result(to_server.call_id, "logged")
    service.send_result(to_service.call_id, None)
    exchange(server, service)
    assert server.events_received() == [CallResult(a, None)]
    assert service.events_received() == [CallResult(b, "logged")]


def test_errors_are_re_raised_as_their_own_type(pair):
    server, service = pair
    first = server.call("DataInterface", "getFile", ("/missing",))
    second = server.call("DataInterface", "strange")
    transfer(server, service)
    service.events_received()
    service.send_error(first, FileNotFoundError(2, "No such file or directory", "/missing"))

    class Strange(Exception):
        pass

    service.send_error(second, Strange("odd"))
    transfer(service, server)
    failed = {e.call_id: e.exception for e in server.events_received()}
    assert type(failed[first]) is FileNotFoundError and failed[first].filename == "/missing"
    assert type(failed[second]) is RemoteCallError and "Strange" in failed[second].remote_type


def test_empty_bytes_result_arrives(pair):
    # RT-Cloud sent no frame at all for an empty file, so the caller waited for its timeout.
    server, service = pair
    call_id = server.call("DataInterface", "getFile", ("/empty",))
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, b"")
    transfer(service, server)
    assert server.events_received() == [CallResult(call_id, b"")]


def test_result_that_cannot_be_sent_becomes_an_error(pair):
    server, service = pair
    call_id = server.call("I", "m")
    transfer(server, service)
    service.events_received()
    assert service.send_result(call_id, object())
    transfer(service, server)
    (event,) = server.events_received()
    assert isinstance(event, CallFailed) and isinstance(event.exception, SerializationError)
    assert "cannot be sent" in str(event.exception)


def test_call_with_unsendable_arguments_raises_at_once(pair):
    server, _ = pair
    with pytest.raises(SerializationError):
        server.call("I", "m", (object(),))
    with pytest.raises(SerializationError, match="names must be strings"):
        server.call("I", "m", (), {1: 2})
    with pytest.raises(ValidationError, match="deadline_s"):
        server.call("I", "m", (), {}, -1.0)
    with pytest.raises(ValidationError, match="deadline_s"):
        server.call("I", "m", (), {}, float("inf"))
    with pytest.raises(ValidationError, match="method name"):
        server.call("I", "")
    assert server.pending_calls == frozenset()
    assert server.next_frame() is None


def test_message_over_the_size_limit_is_refused_when_sending():
    conn = RpcConnection(limits=Limits(max_message_size=100_000))
    with pytest.raises(SerializationError, match="larger than the limit"):
        conn.call("I", "m", (b"x" * 200_000,))
    assert conn.pending_calls == frozenset()


def test_large_values_round_trip_in_chunks(pair):
    server, service = pair
    blob = os.urandom(3 * MiB + 17)
    volume = np.random.default_rng(1).standard_normal((64, 64, 36)).astype(np.float32)
    call_id = server.call("DataInterface", "putFile", ("/f", blob, volume))
    frames = server.frames_to_send()
    assert len(frames) > 4 and max(len(f) for f in frames) <= MiB + 100
    for frame in frames:
        service.receive_frame(frame)
    (incoming,) = service.events_received()
    assert incoming.args[1] == blob
    np.testing.assert_array_equal(incoming.args[2], volume)
    assert incoming.args[2].flags.writeable
    service.send_result(call_id, {"a": volume, "b": blob, "c": [blob[:70_000]] * 3})
    transfer(service, server)
    (result,) = server.events_received()
    assert result.value["b"] == blob and result.value["c"] == [blob[:70_000]] * 3
    np.testing.assert_array_equal(result.value["a"], volume)


def test_a_large_binary_value_is_assembled_as_its_chunks_arrive(pair):
    server, service = pair
    big = os.urandom(ASSEMBLE_MIN + 3 * MiB + 5)
    small = os.urandom(ASSEMBLE_MIN - 1)
    server.call("DataInterface", "putFile", ("/f", big, small))
    frames = server.frames_to_send()
    held = []
    for frame in frames:
        before = sys.getrefcount(frame)
        service.receive_frame(frame)
        held.append(sys.getrefcount(frame) > before)
    (incoming,) = service.events_received()
    # the big value: one bytearray, filled as chunks came, no chunk frame kept
    assert type(incoming.args[1]) is bytearray and incoming.args[1] == big
    # below the threshold: chunks are kept (not copied) and joined into bytes at the end
    assert type(incoming.args[2]) is bytes and incoming.args[2] == small
    # held until the message was complete: the envelope's chunk and the small value's
    # first (its second completed the message); none of the big value's six
    assert sum(held) == 2


def test_a_relaying_end_keeps_large_parts_as_the_chunks_came():
    """The project server passes a service's large result on to a script as it came: with
    ``assemble=False`` no part is copied into a buffer of its own."""
    server = RpcConnection("server", assemble=False)
    service = RpcConnection("data-service")
    exchange(server, service)
    server.events_received(), service.events_received()
    big = os.urandom(ASSEMBLE_MIN + 3 * MiB + 5)
    call_id = server.call("DataInterface", "getFile", ("/f",), raw_result=True)
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, big)
    frames = service.frames_to_send()
    for frame in frames:
        server.receive_frame(frame)
    (result,) = server.events_received()
    (pieces,) = result.value.buffers
    assert len(pieces) == 6  # the chunks, each a view of its received frame
    assert all(
        type(piece) is bytes or (type(piece) is memoryview and type(piece.obj) is bytes)
        for piece in pieces
    )
    assert b"".join(pieces) == big and result.value.decode() == big


def test_big_envelope_without_buffers_is_chunked_too(pair):
    server, service = pair
    numbers = list(range(300_000))  # ~1.4 MB of msgpack, no out-of-band buffer
    server.call("I", "m", (numbers,))
    assert transfer(server, service) >= 3
    (incoming,) = service.events_received()
    assert incoming.args == (numbers,)


# ---------------------------------------------------------------------------------- interleaving


def test_small_call_is_not_held_behind_a_20_mb_result(pair):
    server, service = pair
    call_id = server.call("DataInterface", "getFile", ("/big",))
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, os.urandom(20 * MiB))
    small = service.call("Server", "status", ("ok",))
    first_two = [service.next_frame(), service.next_frame()]
    decoded = [decode_frame(f) for f in first_two]
    assert any(isinstance(m, Call) and m.call_id == small for m in decoded), kinds(first_two)
    # A small message queued while the stream is under way also goes out next.
    for _ in range(5):
        service.next_frame()
    late = service.call("Server", "status", ("late",))
    assert decode_frame(service.next_frame()) == Call(
        late, "Server", "status", ("late",), {}, None
    )


def test_two_large_messages_interleave_round_robin(pair):
    server, service = pair
    ids = [server.call("I", "a"), server.call("I", "b")]
    transfer(server, service)
    service.events_received()
    for call_id in ids:
        service.send_result(call_id, os.urandom(4 * MiB))
    streams = []
    while (frame := service.next_frame()) is not None:
        message = decode_frame(frame)
        if isinstance(message, Chunk):
            streams.append(message.stream_id)
        server.receive_frame(frame)
    assert streams[:6] == [streams[0], streams[1]] * 3 and streams[0] != streams[1]
    assert {e.call_id for e in server.events_received()} == set(ids)


def test_streams_are_not_starved_by_many_small_messages():
    limits = Limits(chunk_size=4096, max_frame_size=8192, max_parts=100)
    conn = RpcConnection(limits=limits)
    conn.next_frame()  # hello
    conn.call("I", "big", (os.urandom(64 * 1024),))
    for i in range(500):
        conn.call("I", "small", (i,))
    first = kinds(conn.next_frame() for _ in range(400))
    # About chunk_size bytes of small frames (~130 calls) pass between two stream frames.
    assert first.count("Begin") + first.count("Chunk") >= 2, first


def test_chunks_are_made_lazily_without_copying_the_payload(pair):
    server, service = pair
    call_id = server.call("I", "get")
    transfer(server, service)
    service.events_received()
    payload = os.urandom(50 * MiB)
    tracemalloc.start()
    try:
        service.send_result(call_id, payload)
        frames = [service.next_frame() for _ in range(3)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * MiB, f"queueing a 50 MB result allocated {peak / MiB:.1f} MiB"
    assert kinds(frames) == ["Begin", "Chunk", "Chunk"]


# ---------------------------------------------------------------------------------- failure


def test_fail_all_fails_every_pending_call_at_once(pair):
    server, service = pair
    first = server.call("DataInterface", "getImageData", (1, 2), {}, 60.0)
    second = server.call("SubjectInterface", "setResult", (1, 2, 3.0))
    transfer(server, service)
    service.events_received()
    server.fail_all("the data service disconnected")
    events = server.events_received()
    assert [e.call_id for e in events] == [first, second]
    assert all(isinstance(e, CallFailed) for e in events)
    assert all(type(e.exception) is ServiceUnavailableError for e in events)
    assert str(events[0].exception) == "DataInterface.getImageData: the data service disconnected"
    assert isinstance(events[0].exception, ConnectionError)
    assert server.state is State.CLOSED and server.next_frame() is None
    with pytest.raises(ServiceUnavailableError, match="closed"):
        server.call("I", "m")
    server.fail_all("again")  # idempotent
    assert server.events_received() == []
    service.fail_all()
    assert service.events_received() == [
        IncomingCallCancelled(first),
        IncomingCallCancelled(second),
    ]
    assert not service.send_result(first, 1)


def test_frames_after_close_are_ignored(pair):
    server, service = pair
    service.call("I", "m")
    server.fail_all()
    transfer(service, server)
    assert server.events_received() == []


def test_cancel_tells_the_peer_and_fails_the_call_locally(pair):
    server, service = pair
    call_id = server.call("DataInterface", "watchFile", ("/f",))
    transfer(server, service)
    service.events_received()
    assert server.cancel(call_id)
    (event,) = server.events_received()
    assert isinstance(event.exception, CallCancelled) and "watchFile" in str(event.exception)
    assert not server.cancel(call_id)
    transfer(server, service)
    assert service.events_received() == [IncomingCallCancelled(call_id)]
    assert not service.send_result(call_id, "too late")
    assert service.next_frame() is None


def test_late_result_after_cancel_is_dropped(pair):
    server, service = pair
    call_id = server.call("I", "m")
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, "answer")  # crosses the cancel on the wire
    server.cancel(call_id)
    server.events_received()
    exchange(server, service)
    assert server.events_received() == [] and service.events_received() == []


def test_expire_fails_the_call_with_call_timeout(pair):
    server, service = pair
    call_id = server.call("DataInterface", "getImageData", (), {}, 2.0)
    assert server.expire(call_id)
    (event,) = server.events_received()
    assert type(event.exception) is CallTimeout and isinstance(event.exception, TimeoutError)
    assert "getImageData: no result within 2 s" in str(event.exception)
    other = server.call("I", "m")
    server.expire(other, waited_s=7.5)
    assert "within 7.5 s" in str(server.events_received()[0].exception)
    assert not server.expire(12345)


def test_cancel_while_arguments_stream_aborts_the_stream(pair):
    server, service = pair
    call_id = server.call("DataInterface", "putFile", ("/f", os.urandom(5 * MiB)))
    for _ in range(3):  # begin and two chunks
        service.receive_frame(server.next_frame())
    server.cancel(call_id)
    rest = server.frames_to_send()
    assert kinds(rest) == ["Abort"]
    service.receive_frame(rest[0])
    assert service.events_received() == []
    # The partial message was dropped: a limit of one message in progress is free again.


def test_cancel_before_a_stream_starts_sends_nothing(pair):
    server, _ = pair
    call_id = server.call("I", "put", (os.urandom(2 * MiB),))
    server.cancel(call_id)
    assert server.frames_to_send() == []


def test_peer_cancel_aborts_a_streaming_result(pair):
    server, service = pair
    call_id = server.call("DataInterface", "getFile", ("/big",))
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, os.urandom(20 * MiB))
    for _ in range(3):
        server.receive_frame(service.next_frame())
    server.cancel(call_id)
    transfer(server, service)
    assert service.events_received() == []  # already answered: nothing for the transport to do
    assert kinds(service.frames_to_send()) == ["Abort"]


def test_ping_pong(pair):
    server, service = pair
    nonce = server.ping()
    transfer(server, service)
    assert service.events_received() == [PingReceived(nonce)]
    transfer(service, server)
    assert server.events_received() == [PongReceived(nonce)]
    assert server.ping() == nonce + 1


def test_close_refuses_new_calls_but_finishes_pending_ones(pair):
    server, service = pair
    call_id = server.call("I", "m")
    transfer(server, service)
    service.events_received()
    server.close()
    assert server.state is State.CLOSING and not server.close_expected()
    with pytest.raises(ServiceUnavailableError, match="closing"):
        server.call("I", "m")
    refused = service.call("Server", "x")
    transfer(service, server)
    assert server.events_received() == []
    transfer(server, service)
    (event,) = service.events_received()
    assert event.call_id == refused and "shutting down" in str(event.exception)
    service.send_result(call_id, 1)
    transfer(service, server)
    assert server.events_received() == [CallResult(call_id, 1)]
    assert server.close_expected()


def test_too_many_incoming_calls_are_answered_with_an_error():
    caller, callee = RpcConnection(), RpcConnection(limits=Limits(max_incoming_calls=2))
    exchange(caller, callee)
    ids = [caller.call("I", "m", (i,)) for i in range(3)]
    exchange(caller, callee)
    assert [e.call_id for e in callee.events_received() if isinstance(e, IncomingCall)] == ids[:2]
    failed = [e for e in caller.events_received() if isinstance(e, CallFailed)]
    assert [e.call_id for e in failed] == [ids[2]]
    assert "already in progress" in str(failed[0].exception)


def test_result_for_an_unknown_call_is_ignored(pair):
    server, _ = pair
    server.receive_frame(encode_message(Result(99, "stray"))[0])
    assert server.events_received() == [] and server.state is State.OPEN


# ---------------------------------------------------------------------------------- bad peers


def _call_frame(call_id=1):
    return encode_message(Call(call_id, "I", "m"))[0]


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([_call_frame()], "did not start with a hello"),
        ([encode_message(Hello(2, "future"))[0]], "version 2 of the rtcloud RPC protocol"),
        ([encode_message(Hello(1, "raw"))[0]] * 2, "second hello"),
        ([encode_frame(Chunk(5, 0, b"x"))], "not begun"),
        ([encode_frame(Begin(1, (10,))), encode_frame(Chunk(1, 1, b"x"))], "out of order"),
        (
            [encode_frame(Begin(1, (10,)))] + [encode_frame(Chunk(1, 0, b"x"))] * 2,
            "out of order or twice",
        ),
        ([encode_frame(Begin(1, (3,))), encode_frame(Chunk(1, 0, b"xyzw"))], "1 to 3 were"),
        ([encode_frame(Begin(1, (10,))), encode_frame(Begin(1, (10,)))], "begun twice"),
        ([encode_frame(Begin(i, (10,))) for i in range(65)], "more than 64 messages"),
        ([encode_frame(Begin(1, (1 << 30, 1 << 30, 1)))], "larger than the limit"),
        (
            [encode_frame(Begin(1, ((1 << 30) + 1,))), encode_frame(Begin(2, ((1 << 30) + 1,)))],
            "messages in progress would hold",
        ),
        ([_call_frame(1), _call_frame(1)], "already in progress"),
        (
            [
                encode_frame(Begin(1, (2, 1))),
                encode_frame(Chunk(1, 0, b"\x81\xa1")),
                encode_frame(Chunk(1, 1, b"t")),
            ],
            "malformed frame",
        ),
        ([b"\x93\x01\x02\x03"], "must be a msgpack map"),
        ([b"\xff" * 10], "malformed frame"),
    ],
)
def test_protocol_errors_close_the_connection_and_fail_pending_calls(frames, message):
    conn = RpcConnection()
    if not (message.startswith("did not") or "version" in message):
        raw_peer(conn)
    pending = conn.call("DataInterface", "getImageData")
    with pytest.raises(ProtocolError, match=message):
        for frame in frames:
            conn.receive_frame(frame)
    assert conn.state is State.CLOSED
    events = conn.events_received()
    assert [e.call_id for e in events if isinstance(e, CallFailed)] == [pending]
    (failure,) = [e.exception for e in events if isinstance(e, CallFailed)]
    assert type(failure) is ServiceUnavailableError and "invalid message" in str(failure)


def test_aborted_stream_releases_its_budget():
    conn = raw_peer(RpcConnection(limits=Limits(max_partial_messages=1)))
    conn.receive_frame(encode_frame(Begin(1, (100,))))
    conn.receive_frame(encode_frame(Chunk(1, 0, b"x" * 10)))
    conn.receive_frame(encode_frame(Abort(1)))
    conn.receive_frame(encode_frame(Abort(77)))  # unknown stream: nothing to drop
    conn.receive_frame(encode_frame(Begin(2, (100,))))
    assert conn.state is State.OPEN


def test_undecodable_call_is_answered_with_an_error_and_the_link_stays_up():
    conn = raw_peer(RpcConnection())
    bad = msgpack.packb(
        {"t": "call", "i": 3, "if": "I", "m": "m", "p": msgpack.packb(msgpack.ExtType(99, b""))}
    )
    conn.receive_frame(bad)
    assert conn.events_received() == [] and conn.state is State.OPEN
    (reply,) = [decode_frame(f) for f in conn.frames_to_send()[1:]]
    assert reply.call_id == 3 and reply.type_name == "ProtocolError"
    assert "I.m: the arguments could not be decoded" in reply.message


def test_undecodable_result_fails_only_that_call():
    conn = raw_peer(RpcConnection())
    call_id = conn.call("I", "m")
    conn.receive_frame(msgpack.packb({"t": "res", "i": call_id, "p": b"\xc1"}))
    (event,) = conn.events_received()
    assert type(event.exception) is ProtocolError and "reply could not be decoded" in str(
        event.exception
    )
    assert conn.state is State.OPEN


def test_stream_with_unused_buffer_fails_only_that_call():
    conn = raw_peer(RpcConnection())
    call_id = conn.call("I", "m")
    envelope = encode_message(Result(call_id, 1))[0]
    conn.receive_frame(encode_frame(Begin(1, (len(envelope), 3))))
    conn.receive_frame(encode_frame(Chunk(1, 0, envelope)))
    conn.receive_frame(encode_frame(Chunk(1, 1, b"abc")))
    (event,) = conn.events_received()
    assert type(event.exception) is ProtocolError and "not used" in str(event.exception)


# ---------------------------------------------------------------------------------- raw results


def test_raw_result_arrives_encoded_and_can_be_sent_on_unchanged(pair):
    """A forwarding side keeps a reply encoded; re-sending it gives the peer the same value."""
    server, service = pair
    big = os.urandom(3 * MiB)
    call_id = server.call("DataInterface", "getFile", ["/x"], raw_result=True)
    transfer(server, service)
    (incoming,) = service.events_received()
    assert incoming.call_id == call_id
    service.send_result(call_id, {"file": big, "n": 7})
    transfer(service, server)
    (event,) = server.events_received()
    assert isinstance(event, CallResult) and isinstance(event.value, codec.Encoded)
    assert event.value.nbytes > len(big)
    assert event.value.decode() == {"file": big, "n": 7}
    # Passed on as it is (to a third connection), it arrives as the value.
    relay, script = RpcConnection("relay"), RpcConnection("script")
    exchange(relay, script)
    relay.events_received(), script.events_received()
    second = script.call("DataInterface", "getFile", ["/x"])
    transfer(script, relay)
    (forwarded,) = relay.events_received()
    relay.send_result(forwarded.call_id, event.value)
    transfer(relay, script)
    assert script.events_received() == [CallResult(second, {"file": big, "n": 7})]


def test_a_streamed_result_is_passed_on_as_its_chunks_arrive(pair):
    """With stream_result, the payload comes as soon as its chunk did, then each piece; the
    pieces, with the payload, decode to the value the service sent."""
    server, service = pair
    big, small = os.urandom(3 * MiB + 5), os.urandom(200_000)
    call_id = server.call("I", "m", raw_result=True, stream_result=True)
    plain_id = server.call("I", "m", raw_result=True)  # not streamed: as before
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, {"a": big, "b": small, "n": 7})
    frames = []
    while (frame := service.next_frame()) is not None:
        frames.append(frame)
    events = []
    for frame in frames:
        server.receive_frame(frame)
        events.extend(server.events_received())
        if len(events) == 1:  # announced before the rest of its bytes arrived
            assert isinstance(events[0], ResultBegun) and frame is not frames[-1]
    begun, *pieces, end = events
    assert begun.call_id == call_id and begun.lengths == (len(big), len(small))
    assert all(isinstance(e, ResultPiece) and e.call_id == call_id for e in pieces)
    assert end == CallResult(call_id, None)
    parts = [bytearray(), bytearray()]
    at = 0
    for piece in pieces:  # the pieces fill the parts in order
        parts[at] += piece.data
        if len(parts[at]) == begun.lengths[at]:
            at += 1
    value = codec.Encoded(begun.payload, [(bytes(parts[0]),), (bytes(parts[1]),)]).decode()
    assert value == {"a": big, "b": small, "n": 7}
    assert call_id not in server.pending_calls and plain_id in server.pending_calls
    # the same reply to a call without stream_result arrives whole, as before
    service.send_result(plain_id, {"a": big})
    transfer(service, server)
    (event,) = server.events_received()
    assert isinstance(event, CallResult) and event.value.decode() == {"a": big}


def test_a_streamed_result_cut_short_fails_its_call(pair):
    server, service = pair
    call_id = server.call("I", "m", raw_result=True, stream_result=True)
    transfer(server, service)
    service.events_received()
    service.send_result(call_id, os.urandom(3 * MiB))
    for _ in range(3):  # the begin frame, the payload's chunk, one chunk of the bytes
        server.receive_frame(service.next_frame())
    begun, piece = server.events_received()
    assert isinstance(begun, ResultBegun) and isinstance(piece, ResultPiece)
    server.fail_all("the data service disconnected")
    (event,) = server.events_received()
    assert isinstance(event, CallFailed) and event.call_id == call_id
    assert isinstance(event.exception, ServiceUnavailableError)


def test_raw_result_is_not_validated_but_a_normal_one_is():
    conn = raw_peer(RpcConnection())
    raw_id, normal_id = conn.call("I", "m", raw_result=True), conn.call("I", "m")
    for call_id in (raw_id, normal_id):
        conn.receive_frame(msgpack.packb({"t": "res", "i": call_id, "p": b"\xc1"}))
    raw_event, normal_event = conn.events_received()
    assert isinstance(raw_event, CallResult) and isinstance(raw_event.value, codec.Encoded)
    with pytest.raises(ProtocolError):
        raw_event.value.decode()
    assert isinstance(normal_event, CallFailed)
    assert "I.m: the reply could not be decoded" in str(normal_event.exception)
