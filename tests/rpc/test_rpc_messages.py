"""rtcloud.rpc.messages: wire form of each message, strict validation, errors as messages."""

from __future__ import annotations

import json
import queue
import traceback

import msgpack
import pytest

from rtcloud.errors import (
    CallTimeout,
    ConfigError,
    FileWaitTimeout,
    ProtocolError,
    RemoteCallError,
    ServiceUnavailableError,
    ValidationError,
)
from rtcloud.rpc.messages import (
    ALLOWED_ERROR_NAMES,
    Abort,
    Begin,
    Call,
    Cancel,
    Chunk,
    Error,
    Hello,
    Limits,
    Ping,
    Pong,
    Result,
    Undecodable,
    allowed_error,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
    error_to_message,
    message_to_exception,
)


def wire(message):
    envelope, buffers = encode_message(message)
    assert buffers == []
    return envelope


@pytest.mark.parametrize(
    "message",
    [
        Hello(1, "data-service"),
        Call(7, "DataInterface", "getFile", ("/a/b.dcm",), {"compress": False}, 12.5),
        Call(8, "SubjectInterface", "setResult", (1, 2, 0.5), {}, None),
        Result(7, {"x": (1, 2), "b": b"\x00\x01"}),
        Result(9, None),
        Cancel(7),
        Ping(3),
        Pong(3),
        Error(4, "ValueError", "bad", "Traceback...", ("bad",), {}, ()),
    ],
)
def test_messages_round_trip(message):
    assert decode_frame(wire(message)) == message


def test_each_frame_is_one_msgpack_map_with_short_keys():
    frame = msgpack.unpackb(wire(Call(1, "I", "m", (1,), {}, 2.0)))
    assert frame["t"] == "call" and frame["i"] == 1 and frame["if"] == "I" and frame["m"] == "m"
    assert frame["dl"] == 2.0 and isinstance(frame["p"], bytes)
    assert msgpack.unpackb(wire(Ping(5))) == {"t": "ping", "n": 5}


def test_bytes_travel_as_msgpack_bin_never_base64():
    envelope = wire(Result(1, b"\xde\xad\xbe\xef" * 10))
    assert b"\xde\xad\xbe\xef" * 10 in envelope
    assert b"3q2+7" not in envelope  # base64 of the same bytes


def test_stream_frames_round_trip():
    for frame in (Begin(3, (10, 20)), Chunk(3, 0, b"abc"), Abort(3)):
        assert decode_frame(encode_frame(frame)) == frame
    raw = encode_frame(Chunk(3, 1, memoryview(b"xyz" * 1000)))
    assert msgpack.unpackb(raw) == {"t": "chunk", "s": 3, "q": 1, "d": b"xyz" * 1000}


def test_unknown_keys_are_ignored():
    frame = msgpack.packb({"t": "ping", "n": 1, "future": [1, 2]})
    assert decode_frame(frame) == Ping(1)


def _bad(mapping):
    return msgpack.packb(mapping, use_bin_type=True)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "malformed frame"),
        (b"\xc1", "malformed frame"),
        (_bad([1, 2]), "must be a msgpack map"),
        (_bad({"n": 1}), "type field"),
        (_bad({"t": 5}), "type field"),
        (_bad({"t": "launch"}), "unknown message type 'launch'"),
        (_bad({"t": "ping"}), "lacks field 'n'"),
        (_bad({"t": "ping", "n": "1"}), "must be int, not str"),
        (_bad({"t": "ping", "n": True}), "must be int, not bool"),
        (_bad({"t": "ping", "n": -1}), "out of range"),
        (_bad({"t": "cancel", "i": 1.0}), "must be int"),
        (_bad({"t": "call", "i": 1, "if": "I", "m": "m"}), "lacks field 'p'"),
        (_bad({"t": "call", "i": 1, "if": "", "m": "m", "p": b""}), "1 to 256"),
        (_bad({"t": "call", "i": 1, "if": "I" * 300, "m": "m", "p": b""}), "1 to 256"),
        (_bad({"t": "call", "i": 1, "if": "I", "m": "m", "p": "text"}), "must be bytes"),
        (
            _bad({"t": "call", "i": 1, "if": "I", "m": "m", "p": b"\x92\x90\x80", "dl": "x"}),
            "deadline",
        ),
        (
            _bad(
                {
                    "t": "call",
                    "i": 1,
                    "if": "I",
                    "m": "m",
                    "p": b"\x92\x90\x80",
                    "dl": float("nan"),
                }
            ),
            "deadline",
        ),
        (_bad({"t": "res", "i": 1}), "lacks field 'p'"),
        (_bad({"t": "hello", "v": "1"}), "must be int"),
        (_bad({"t": "chunk", "s": 1, "q": 0, "d": "text"}), "must be bytes"),
        (_bad({"t": "begin", "s": 1, "len": []}), "1 to"),
        (_bad({"t": "begin", "s": 1, "len": [0]}), "invalid size"),
        (_bad({"t": "begin", "s": 1, "len": [1, "2"]}), "invalid size"),
        (_bad({"t": "begin", "s": 1, "len": [3 << 30]}), "invalid size"),
        (_bad({"t": "begin", "s": 1, "len": [1] * 5000}), "1 to 4096 parts"),
        (_bad({"t": "abort"}), "lacks field 's'"),
        (_bad({1: 2}), "malformed frame"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame, message):
    with pytest.raises(ProtocolError, match=message):
        decode_frame(frame)


def test_oversized_frame_is_rejected_before_parsing():
    limits = Limits(chunk_size=1024, max_frame_size=4096, max_parts=100)
    with pytest.raises(ProtocolError, match="larger than the limit of 4096"):
        decode_frame(wire(Result(1, b"x" * 5000)), limits)


def test_stream_frames_cannot_be_nested_in_a_stream():
    with pytest.raises(ProtocolError, match="cannot be sent inside a stream"):
        decode_message(encode_frame(Chunk(1, 0, b"x")))


def test_only_calls_and_results_carry_buffers():
    with pytest.raises(ProtocolError, match="cannot have out-of-band buffers"):
        decode_message(wire(Ping(1)), [[b"x"]])


def test_bad_payload_of_a_valid_envelope_is_scoped_to_its_call():
    bad_payload = msgpack.packb(msgpack.ExtType(99, b""))
    call = decode_frame(_bad({"t": "call", "i": 4, "if": "I", "m": "m", "p": bad_payload}))
    assert isinstance(call, Undecodable) and call.kind == "call" and call.call_id == 4
    assert (call.interface, call.method) == ("I", "m")
    assert "unknown extension type 99" in str(call.error)
    args_not_a_pair = decode_frame(_bad({"t": "call", "i": 5, "if": "I", "m": "m", "p": b"\x01"}))
    assert isinstance(args_not_a_pair, Undecodable) and "arguments" in str(args_not_a_pair.error)
    result = decode_frame(_bad({"t": "res", "i": 6, "p": bad_payload}))
    assert isinstance(result, Undecodable) and result.kind == "res" and result.call_id == 6
    err = decode_frame(_bad({"t": "err", "i": 7, "e": {"type": 1}}))
    assert isinstance(err, Undecodable) and err.kind == "err" and err.call_id == 7


def test_limits_are_validated():
    with pytest.raises(ValueError, match="chunk_size"):
        Limits(chunk_size=10)
    with pytest.raises(ValueError, match="max_frame_size"):
        Limits(chunk_size=4096, max_frame_size=4096)
    with pytest.raises(ValueError, match="max_parts"):
        Limits(max_parts=1_000_000)
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=0)


# ---------------------------------------------------------------------------------- errors


def _raised(exc):
    try:
        raise exc
    except BaseException as caught:
        return caught


def across(exc):
    """What the caller gets when the peer raised ``exc`` (through the wire form)."""
    envelope, _ = encode_message(Error.from_exception(1, _raised(exc)))
    message = decode_frame(envelope)
    assert isinstance(message, Error)
    return message_to_exception(message)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad value"),
        TypeError("bad type"),
        KeyError("missing"),
        IndexError("out"),
        TimeoutError("late"),
        FileNotFoundError(2, "No such file or directory", "/data/x.dcm"),
        PermissionError("no"),
        IsADirectoryError("dir"),
        NotImplementedError("later"),
        RuntimeError("boom"),
        queue.Empty(),
        ValidationError("runId must be an int"),
        CallTimeout("slow"),
        ServiceUnavailableError("gone"),
    ],
)
def test_allow_listed_errors_are_re_raised_as_themselves(exc):
    out = across(exc)
    assert type(out) is type(exc)
    assert str(out) == str(exc)
    assert out.args == exc.args


def test_os_errors_keep_errno_and_filename():
    out = across(FileNotFoundError(2, "No such file or directory", "/data/x.dcm"))
    assert out.errno == 2 and out.filename == "/data/x.dcm"
    assert str(out) == "[Errno 2] No such file or directory: '/data/x.dcm'"


def test_our_errors_keep_their_fields():
    out = across(ConfigError("bad config", path="/p.toml", field="runNum", errors={"a": "b"}))
    assert type(out) is ConfigError
    assert (out.path, out.field, out.errors) == ("/p.toml", "runNum", {"a": "b"})
    waited = across(FileWaitTimeout("no file", path="/x", waited=2.5))
    assert isinstance(waited, TimeoutError) and waited.waited == 2.5 and waited.path == "/x"


def test_remote_traceback_is_kept_and_printed_as_the_cause():
    def service_method():
        raise ValueError("bad runId")

    try:
        service_method()
    except ValueError as exc:
        out = message_to_exception(Error.from_exception(1, exc))
    assert "service_method" in out.remote_traceback
    assert isinstance(out.__cause__, RemoteCallError)
    printed = "".join(traceback.format_exception(type(out), out, None))
    assert "in service_method" in printed and "bad runId" in printed


def test_other_errors_become_remote_call_error():
    class Custom(Exception):
        pass

    out = across(Custom("strange"))
    assert isinstance(out, RemoteCallError)
    assert out.remote_type.endswith("test_remote.<locals>.Custom") or "Custom" in out.remote_type
    assert "strange" in str(out) and "Custom" in str(out)
    assert "raise exc" in out.remote_traceback


def test_subclass_of_an_allowed_builtin_is_also_caught_as_that_builtin():
    out = across(json.JSONDecodeError("Expecting value", "x", 0))
    assert isinstance(out, RemoteCallError) and isinstance(out, ValueError)
    assert out.remote_type == "json.decoder.JSONDecodeError"
    broken = across(BrokenPipeError("pipe"))
    assert isinstance(broken, RemoteCallError) and isinstance(broken, ConnectionError)


def test_peer_cannot_make_us_instantiate_arbitrary_classes():
    for name in ("os.system", "builtins.eval", "SystemExit", "KeyboardInterrupt", "object"):
        out = message_to_exception({"type": name, "message": "x", "bases": ["SystemExit", "eval"]})
        assert type(out) is RemoteCallError and out.remote_type == name


@pytest.mark.parametrize(
    "record",
    [
        {"message": "no type"},
        {"type": "ValueError"},
        {"type": "ValueError", "message": "m", "args": [object()]},
        {"type": "ValueError", "message": "m", "fields": {"k": [[[["deep"]]]]}},
        {"type": "ValueError", "message": "m", "bases": [1]},
        "not a map",
    ],
)
def test_malformed_error_record_gives_protocol_error(record):
    out = message_to_exception(record)
    assert type(out) is ProtocolError and "malformed error" in str(out)


def test_error_constructor_mismatch_falls_back_to_the_message():
    out = message_to_exception({"type": "FileWaitTimeout", "message": "m", "args": [1, 2, 3, 4]})
    assert type(out) is FileWaitTimeout and str(out) == "m"


def test_error_record_is_plain_data():
    record = error_to_message(_raised(ConfigError("bad", path="/x")))
    assert record["type"] == "ConfigError" and record["message"] == "bad"
    assert record["fields"] == {"path": "/x"} and "Traceback" in record["traceback"]
    assert msgpack.unpackb(msgpack.packb(record)) == record


def test_huge_error_messages_are_clipped():
    record = error_to_message(ValueError("x" * 1_000_000))
    assert len(record["message"]) < 70_000 and "args" not in record


def test_allow_list_holds_our_errors_and_common_builtins_only():
    assert allowed_error("ValidationError") is ValidationError
    assert allowed_error("FileNotFoundError") is FileNotFoundError
    assert allowed_error("queue.Empty") is queue.Empty
    types = [allowed_error(name) for name in ALLOWED_ERROR_NAMES]
    assert all(isinstance(cls, type) and issubclass(cls, Exception) for cls in types)
    for name in ("SystemExit", "Exception", "BaseException", "os.system", "Empty"):
        assert allowed_error(name) is None


@pytest.mark.parametrize("stream_id", [0, 1, 127, 128, 65535, 1 << 40])
@pytest.mark.parametrize("seq", [0, 5, 300, 1 << 33])
def test_chunk_frames_are_read_without_copying_their_data(stream_id, seq):
    data = bytes(range(256)) * 10
    frame = encode_frame(Chunk(stream_id, seq, data))
    chunk = decode_frame(frame)
    assert (chunk.stream_id, chunk.seq, bytes(chunk.data)) == (stream_id, seq, data)
    assert isinstance(chunk.data, memoryview) and chunk.data.obj is frame  # a view, no copy
    # the same chunk packed another way (keys in another order) is read by the general path
    other = msgpack.packb({"d": data, "q": seq, "s": stream_id, "t": "chunk"}, use_bin_type=True)
    again = decode_frame(other)
    assert (again.stream_id, again.seq, bytes(again.data)) == (stream_id, seq, data)


def test_a_chunk_frame_with_a_wrong_length_is_refused():
    frame = encode_frame(Chunk(1, 0, b"x" * 100))
    with pytest.raises(ProtocolError):
        decode_frame(frame + b"extra")
    with pytest.raises(ProtocolError):
        decode_frame(frame[:-1])
