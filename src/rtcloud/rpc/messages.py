"""The messages of the RPC protocol, their wire form, and errors as messages.

Every frame is one msgpack map with a short type key ``t``:

======== ============================================================================
``t``    fields
======== ============================================================================
hello    ``v`` protocol version, ``n`` peer name (first frame each side sends)
call     ``i`` call id, ``if`` interface, ``m`` method, ``p`` payload of ``[args, kwargs]``,
         ``dl`` remaining deadline in seconds (or nil)
res      ``i`` call id, ``p`` payload of the value
err      ``i`` call id, ``e`` error record (see :func:`error_to_message`)
cancel   ``i`` call id
ping     ``n`` nonce;  pong: ``n`` the nonce of the ping answered
begin    ``s`` stream id, ``len`` sizes of the parts of a message sent in chunks
chunk    ``s`` stream id, ``q`` sequence number (from 0), ``d`` bytes
abort    ``s`` stream id (the sender gave up on that stream)
======== ============================================================================

A payload (``p``) is a msgpack ``bin`` made by :mod:`rtcloud.rpc.codec`. A message with
out-of-band buffers, or larger than a chunk, travels as a *stream*: ``begin`` declares the
sizes of its parts (the message map, then each buffer), and ``chunk`` frames carry them in
order. Unknown keys are ignored (room to grow); a missing or mistyped field, an unknown
type, or anything over a limit raises :class:`~rtcloud.errors.ProtocolError`. When the
envelope of a call or reply is valid but its payload is not, decoding returns
:class:`Undecodable` so that only that call fails, not the connection.

Errors cross as records: the type name, message, traceback text, simple constructor
arguments and fields. On the receiving side a type on the allow-list (every rtcloud error
and common builtins such as ``FileNotFoundError``, ``TimeoutError``, ``ValueError``) is
re-created as itself; any other type becomes :class:`~rtcloud.errors.RemoteCallError`,
which also derives from the nearest allow-listed builtin base the sender reported (so
``except ValueError`` still catches a remote ``json.JSONDecodeError``). No class named by
the peer outside the allow-list is ever looked up or instantiated.

Pure module: no sockets, threads or clocks; it never imports asyncio, socket, threading,
time, rpyc, starlette or websockets.
"""

from __future__ import annotations

import inspect
import math
import sys
import traceback as _traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from rtcloud import errors as _errors
from rtcloud.errors import ProtocolError, RemoteCallError
from rtcloud.rpc import codec
from rtcloud.rpc.codec import Buffer

__all__ = [
    "ALLOWED_ERROR_NAMES",
    "PROTOCOL_VERSION",
    "Abort",
    "Begin",
    "Call",
    "Cancel",
    "Chunk",
    "Error",
    "Frame",
    "Hello",
    "Limits",
    "Message",
    "Ping",
    "Pong",
    "Result",
    "Undecodable",
    "allowed_error",
    "decode_frame",
    "decode_message",
    "encode_chunk_parts",
    "encode_frame",
    "encode_message",
    "error_to_message",
    "message_to_exception",
    "preview_call",
]

#: Bumped on any incompatible change; peers with another version are refused at hello.
PROTOCOL_VERSION = 1

_MAX_NAME = 256  # interface, method and peer names
_MAX_ID = (1 << 63) - 1
_MAX_TEXT = 64 * 1024  # error message and traceback text kept when sending


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes and counts a connection accepts; anything over a limit is a protocol error."""

    #: Bytes of message data per chunk frame when sending.
    chunk_size: int = 1 << 20
    #: Largest frame accepted (a chunk plus its small header, or a whole small message).
    max_frame_size: int = (1 << 20) + (64 << 10)
    #: Largest message (all its parts) sent or accepted.
    max_message_size: int = codec.MAX_MESSAGE_SIZE
    #: Most parts (the message map plus out-of-band buffers) in one message.
    max_parts: int = codec.MAX_BUFFERS + 1
    #: Most messages being received in chunks at the same time.
    max_partial_messages: int = 64
    #: Most bytes declared by all messages being received in chunks at the same time.
    max_bytes_in_flight: int = codec.MAX_MESSAGE_SIZE
    #: Most calls from the peer in progress at once; more are answered with an error.
    max_incoming_calls: int = 1024
    #: bytes values at least this long are sent out of band (uncopied, in chunks).
    oob_threshold: int = codec.OOB_THRESHOLD
    #: Deepest nesting of values accepted either way.
    max_depth: int = codec.MAX_DEPTH

    def __post_init__(self) -> None:
        if self.chunk_size < 1024:
            raise ValueError("Limits.chunk_size must be at least 1024 bytes")
        if self.max_frame_size < self.chunk_size + 1024:
            raise ValueError("Limits.max_frame_size must exceed chunk_size by at least 1024")
        if self.max_parts < 1 or self.max_parts * 9 + 64 > self.max_frame_size:
            raise ValueError("Limits.max_parts must be >= 1 and its begin frame must fit a frame")
        for name in (
            "max_message_size",
            "max_partial_messages",
            "max_bytes_in_flight",
            "max_incoming_calls",
            "oob_threshold",
            "max_depth",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be positive")


_DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each side sends: protocol version and a name for logs."""

    version: int = PROTOCOL_VERSION
    name: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``interface.method(*args, **kwargs)`` on the peer.

    ``deadline_s`` is the time left, in seconds, when the call was sent (None: no deadline).
    """

    call_id: int
    interface: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    deadline_s: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The value a call returned."""

    call_id: int
    value: Any = None


@dataclass(frozen=True, slots=True)
class Error:
    """The exception a call raised, as a record (see :func:`error_to_message`)."""

    call_id: int
    type_name: str
    message: str
    traceback: str = ""
    args: tuple[Any, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    bases: tuple[str, ...] = ()

    @classmethod
    def from_exception(cls, call_id: int, exc: BaseException) -> Error:
        return cls.from_record(call_id, error_to_message(exc))

    @classmethod
    def from_record(cls, call_id: int, record: Mapping[str, Any]) -> Error:
        """An Error from a record; ProtocolError when the record is malformed."""
        if not isinstance(record, Mapping):
            raise ProtocolError("error record is not a map")
        type_name = _req(record, "type", str)
        message = _req(record, "message", str)
        trace = _opt(record, "traceback", str, "")
        args = _opt(record, "args", list, [])
        fields = _opt(record, "fields", dict, {})
        bases = _opt(record, "bases", list, [])
        if len(type_name) > _MAX_NAME or not all(type(b) is str for b in bases):
            raise ProtocolError("malformed error record")
        if not all(_is_plain(a, 2) for a in args) or not all(
            type(k) is str and _is_plain(v, 2) for k, v in fields.items()
        ):
            raise ProtocolError("malformed error record: arguments must be plain values")
        return cls(call_id, type_name, message, trace, tuple(args), dict(fields), tuple(bases))

    def record(self) -> dict[str, Any]:
        """The plain record (what :func:`error_to_message` returns)."""
        record: dict[str, Any] = {
            "type": self.type_name,
            "message": self.message,
            "traceback": self.traceback,
        }
        if self.args:
            record["args"] = list(self.args)
        if self.fields:
            record["fields"] = dict(self.fields)
        if self.bases:
            record["bases"] = list(self.bases)
        return record

    def to_exception(self) -> Exception:
        return message_to_exception(self)


@dataclass(frozen=True, slots=True)
class Cancel:
    """The caller no longer wants the result of ``call_id``."""

    call_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Keepalive probe; the peer answers with a Pong carrying the same nonce."""

    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to a Ping."""

    nonce: int


@dataclass(frozen=True, slots=True)
class Begin:
    """Start of a message sent in chunks: the sizes of its parts (message map, buffers)."""

    stream_id: int
    lengths: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """The next piece of a stream's data."""

    stream_id: int
    seq: int
    data: Buffer


@dataclass(frozen=True, slots=True)
class Abort:
    """The sender gave up on a stream; the receiver drops what it has of it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A call, result or error whose envelope is valid but whose payload is not.

    ``kind`` is ``"call"``, ``"res"`` or ``"err"``; ``error`` says what is wrong.
    """

    kind: str
    call_id: int
    error: ProtocolError
    interface: str = ""
    method: str = ""


Message = Hello | Call | Result | Error | Cancel | Ping | Pong
Frame = Message | Begin | Chunk | Abort | Undecodable


# ---------------------------------------------------------------------------------- encoding


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def encode_message(
    message: Message, limits: Limits = _DEFAULT_LIMITS
) -> tuple[bytes, list[memoryview]]:
    """The message map of ``message`` and the out-of-band buffers of its values.

    Raises:
        SerializationError: a value that cannot be sent.
    """
    if isinstance(message, (Call, Result)):
        value: Any = (
            [list(message.args), message.kwargs] if isinstance(message, Call) else (message.value)
        )
        payload, buffers = codec.encode_parts(
            value,
            oob_threshold=limits.oob_threshold,
            max_buffers=limits.max_parts - 1,
            max_depth=limits.max_depth,
        )
        if isinstance(message, Call):
            head: dict[str, Any] = {
                "t": "call",
                "i": message.call_id,
                "if": message.interface,
                "m": message.method,
                "p": payload,
                "dl": message.deadline_s,
            }
        else:
            head = {"t": "res", "i": message.call_id, "p": payload}
        return _packb(head), buffers
    if isinstance(message, Error):
        return _packb({"t": "err", "i": message.call_id, "e": message.record()}), []
    if isinstance(message, Cancel):
        return _packb({"t": "cancel", "i": message.call_id}), []
    if isinstance(message, Ping):
        return _packb({"t": "ping", "n": message.nonce}), []
    if isinstance(message, Pong):
        return _packb({"t": "pong", "n": message.nonce}), []
    if isinstance(message, Hello):
        return _packb({"t": "hello", "v": message.version, "n": message.name}), []
    raise TypeError(f"not a message: {message!r}")


def encode_frame(frame: Begin | Chunk | Abort) -> bytes:
    """The bytes of a stream control frame."""
    if isinstance(frame, Chunk):
        return b"".join(encode_chunk_parts(frame))
    if isinstance(frame, Begin):
        return _packb({"t": "begin", "s": frame.stream_id, "len": list(frame.lengths)})
    if isinstance(frame, Abort):
        return _packb({"t": "abort", "s": frame.stream_id})
    raise TypeError(f"not a stream frame: {frame!r}")


def encode_chunk_parts(chunk: Chunk) -> tuple[bytes, Buffer]:
    """The bytes of a chunk frame as two parts: everything before its data, then the data
    itself (not copied: a transport that writes parts sends it as it is)."""
    # Same bytes as packing the map with msgpack: the map ends with an empty bin whose
    # 2-byte header is replaced by a bin32 header for the real data.
    head = _packb({"t": "chunk", "s": chunk.stream_id, "q": chunk.seq, "d": b""})
    return head[:-2] + b"\xc6" + len(chunk.data).to_bytes(4, "big"), chunk.data


# ---------------------------------------------------------------------------------- decoding


def _req(m: Mapping[str, Any], key: str, kind: type, what: str = "") -> Any:
    """Field ``key`` of map ``m``, which must have exactly type ``kind`` (bool is not int)."""
    if key not in m:
        raise ProtocolError(f"{what or 'message'} lacks field {key!r}")
    value = m[key]
    if type(value) is not kind:
        raise ProtocolError(
            f"field {key!r} of {what or 'message'} must be {kind.__name__}, "
            f"not {type(value).__name__}"
        )
    return value


def _opt(m: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    if m.get(key) is None:
        return default
    return _req(m, key, kind)


def _id(m: Mapping[str, Any], key: str, what: str) -> int:
    value: int = _req(m, key, int, what)
    if not 0 <= value <= _MAX_ID:
        raise ProtocolError(f"field {key!r} of {what} is out of range")
    return value


def _name(m: Mapping[str, Any], key: str, what: str) -> str:
    value: str = _req(m, key, str, what)
    if not value or len(value) > _MAX_NAME:
        raise ProtocolError(f"field {key!r} of {what} must be 1 to {_MAX_NAME} characters")
    return value


def _is_plain(value: Any, depth: int) -> bool:
    """A small JSON-like value (for error arguments and fields)."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if depth <= 0:
        return False
    if type(value) is list:
        return all(_is_plain(v, depth - 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain(v, depth - 1) for k, v in value.items())
    return False


def _unpack_map(data: Buffer) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # every malformed input, whatever msgpack calls it
        raise ProtocolError(f"malformed frame: {type(exc).__name__}: {exc}") from exc
    if type(obj) is not dict:
        raise ProtocolError(f"a frame must be a msgpack map, not {type(obj).__name__}")
    kind = obj.get("t")
    if type(kind) is not str:
        raise ProtocolError("frame lacks its type field 't'")
    return obj


_CHUNK_PREFIX = b"\x84\xa1t\xa5chunk\xa1s"


def _fast_chunk(data: Buffer) -> Chunk | None:
    """A chunk frame laid out as :func:`encode_frame` writes it, its data left uncopied.

    Returns None for any other layout (which the general decoder then reads).
    """
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1 or view[: len(_CHUNK_PREFIX)] != _CHUNK_PREFIX:
        return None
    stream = codec.uint_at(view, len(_CHUNK_PREFIX))
    if stream is None or bytes(view[stream[1] : stream[1] + 2]) != b"\xa1q":
        return None
    seq = codec.uint_at(view, stream[1] + 2)
    if seq is None:
        return None
    pos = seq[1]
    if bytes(view[pos : pos + 3]) != b"\xa1d\xc6" or pos + 7 > len(view):
        return None
    size = int.from_bytes(view[pos + 3 : pos + 7], "big")
    if pos + 7 + size != len(view) or stream[0] > _MAX_ID or seq[0] > _MAX_ID:
        return None
    return Chunk(stream[0], seq[0], view[pos + 7 :])


def decode_frame(
    data: Buffer, limits: Limits = _DEFAULT_LIMITS, *, lazy_results: bool = False
) -> Frame:
    """Decode one received frame.

    With ``lazy_results`` a result's value is left encoded (a :class:`~codec.Encoded`).
    A chunk's data may be a memoryview of ``data`` (not copied).

    Raises:
        ProtocolError: malformed, unknown or oversized frame.
    """
    if len(data) > limits.max_frame_size:
        raise ProtocolError(
            f"frame of {len(data)} bytes is larger than the limit of {limits.max_frame_size}"
        )
    chunk = _fast_chunk(data) if len(data) > 64 else None
    if chunk is not None:
        return chunk
    obj = _unpack_map(data)
    kind = obj["t"]
    if kind == "chunk":
        chunk_data = _req(obj, "d", bytes, "chunk")
        return Chunk(_id(obj, "s", "chunk"), _id(obj, "q", "chunk"), chunk_data)
    if kind == "begin":
        lengths = _req(obj, "len", list, "begin")
        if not 1 <= len(lengths) <= limits.max_parts:
            raise ProtocolError(
                f"a message may have 1 to {limits.max_parts} parts, not {len(lengths)}"
            )
        if any(type(n) is not int or not 1 <= n <= limits.max_message_size for n in lengths):
            raise ProtocolError("begin frame declares a part of invalid size")
        return Begin(_id(obj, "s", "begin"), tuple(lengths))
    if kind == "abort":
        return Abort(_id(obj, "s", "abort"))
    return _decode_message_map(obj, (), limits, lazy_results)


def decode_message(
    data: Buffer,
    buffers: Sequence[Sequence[Buffer]] = (),
    limits: Limits = _DEFAULT_LIMITS,
    *,
    lazy_results: bool = False,
) -> Message | Undecodable:
    """Decode a message map received as a stream, with its out-of-band buffers.

    With ``lazy_results`` a result's value is left encoded (a :class:`~codec.Encoded`).

    Raises:
        ProtocolError: malformed message (stream frames cannot be nested in a stream).
    """
    obj = _unpack_map(data)
    if obj["t"] in ("chunk", "begin", "abort"):
        raise ProtocolError(f"a {obj['t']} frame cannot be sent inside a stream")
    return _decode_message_map(obj, buffers, limits, lazy_results)


def preview_call(
    envelope: Buffer, placeholders: Sequence[bytearray], limits: Limits = _DEFAULT_LIMITS
) -> Call | None:
    """The call a streamed message holds, decoded before its out-of-band buffers arrived.

    Each buffer is stood for by the matching (empty) bytearray of ``placeholders``; a plain
    binary argument in such a buffer comes out as that very object, so the caller can tell
    which argument each buffer holds. None when the message is not a call, or when its arguments
    need the buffers' contents to be decoded (arrays, DICOM files).
    """
    try:
        obj = _unpack_map(envelope)
        if obj["t"] != "call":
            return None
        message = _decode_message_map(obj, [[p] for p in placeholders], limits)
    except (ProtocolError, KeyError, TypeError, ValueError):
        return None
    return message if isinstance(message, Call) else None


def _decode_message_map(
    obj: dict[str, Any],
    buffers: Sequence[Sequence[Buffer]],
    limits: Limits,
    lazy_results: bool = False,
) -> Message | Undecodable:
    kind = obj["t"]
    if kind not in ("call", "res") and buffers:
        raise ProtocolError(f"a {kind} message cannot have out-of-band buffers")
    if kind == "call":
        call_id = _id(obj, "i", "call")
        interface = _name(obj, "if", "call")
        method = _name(obj, "m", "call")
        payload = _req(obj, "p", bytes, "call")
        deadline = obj.get("dl")
        if deadline is not None:
            if type(deadline) not in (int, float) or not math.isfinite(deadline):
                raise ProtocolError("deadline of call must be a finite number of seconds")
            deadline = max(0.0, float(deadline))
        try:
            value = codec.decode_parts(payload, buffers, max_depth=limits.max_depth)
            if (
                type(value) is not list
                or len(value) != 2
                or type(value[0]) is not list
                or type(value[1]) is not dict
                or not all(type(k) is str for k in value[1])
            ):
                raise ProtocolError("arguments of a call must be [list, map with str keys]")
        except ProtocolError as exc:
            return Undecodable("call", call_id, exc, interface, method)
        return Call(call_id, interface, method, tuple(value[0]), value[1], deadline)
    if kind == "res":
        call_id = _id(obj, "i", "result")
        payload = _req(obj, "p", bytes, "result")
        if lazy_results:
            return Result(call_id, codec.Encoded(payload, buffers))
        try:
            value = codec.decode_parts(payload, buffers, max_depth=limits.max_depth)
        except ProtocolError as exc:
            return Undecodable("res", call_id, exc)
        return Result(call_id, value)
    if kind == "err":
        call_id = _id(obj, "i", "error")
        try:
            return Error.from_record(call_id, _req(obj, "e", dict, "error"))
        except ProtocolError as exc:
            return Undecodable("err", call_id, exc)
    if kind == "cancel":
        return Cancel(_id(obj, "i", "cancel"))
    if kind == "ping":
        return Ping(_id(obj, "n", "ping"))
    if kind == "pong":
        return Pong(_id(obj, "n", "pong"))
    if kind == "hello":
        version = _req(obj, "v", int, "hello")
        name = _opt(obj, "n", str, "")
        return Hello(version, name[:_MAX_NAME])
    raise ProtocolError(f"unknown message type {kind[:40]!r}")


# ---------------------------------------------------------------------------------- errors


def _allowed_errors() -> dict[str, type[Exception]]:
    table: dict[str, type[Exception]] = {}
    for cls in (
        ArithmeticError,
        AttributeError,
        ConnectionError,
        FileExistsError,
        FileNotFoundError,
        IndexError,
        IsADirectoryError,
        KeyError,
        LookupError,
        NotADirectoryError,
        NotImplementedError,
        OSError,
        PermissionError,
        RuntimeError,
        TimeoutError,
        TypeError,
        ValueError,
        ZeroDivisionError,
    ):
        table[cls.__name__] = cls
    for name in _errors.__all__:
        obj = getattr(_errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            table[obj.__name__] = obj
    return table


_EAGER_ALLOWED = _allowed_errors()
_WIRE_NAMES: dict[type, str] = {cls: name for name, cls in _EAGER_ALLOWED.items()}
# ``queue.Empty`` (SubjectInterface.dequeueResult without a result) is resolved on first
# use: importing queue loads threading, which this package must not import.
_QUEUE_EMPTY = "queue.Empty"
#: Wire names of the error types re-created as themselves on the receiving side.
ALLOWED_ERROR_NAMES: frozenset[str] = frozenset([*_EAGER_ALLOWED, _QUEUE_EMPTY])
_REMOTE_SUBCLASSES: dict[str, type[RemoteCallError]] = {}


def allowed_error(name: str) -> type[Exception] | None:
    """The error type sent under wire name ``name`` if it is allow-listed, else None."""
    cls = _EAGER_ALLOWED.get(name)
    if cls is None and name == _QUEUE_EMPTY:
        import queue

        cls = queue.Empty
    return cls


def _allowed_name(cls: type) -> str | None:
    """The wire name of an allow-listed class, or None."""
    name = _WIRE_NAMES.get(cls)
    if name is None and cls.__name__ == "Empty":
        queue = sys.modules.get("queue")
        if queue is not None and cls is queue.Empty:
            return _QUEUE_EMPTY
    return name


def _wire_name(cls: type[BaseException]) -> str:
    name = _allowed_name(cls)
    if name is not None:
        return name
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _clip(text: str, keep_end: bool = False) -> str:
    if len(text) <= _MAX_TEXT:
        return text
    return "...(cut)..." + text[-_MAX_TEXT:] if keep_end else text[:_MAX_TEXT] + "...(cut)"


def _field_names(cls: type[BaseException]) -> tuple[str, ...]:
    """Keyword-only constructor parameters of one of our error classes (its fields)."""
    if cls.__module__ != _errors.__name__:
        return ()
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def error_to_message(exc: BaseException) -> dict[str, Any]:
    """A plain record of ``exc`` that any codec can carry.

    Keys: ``type`` (wire name), ``message`` (``str(exc)``), ``traceback`` (text), and when
    useful ``args`` (plain constructor arguments), ``fields`` (our errors' keyword fields)
    and ``bases`` (allow-listed bases of a type that is not itself allowed).
    """
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break the error reply
        message = f"<{cls.__name__} with an unprintable message>"
    tb = "".join(_traceback.format_exception(cls, exc, exc.__traceback__))
    record: dict[str, Any] = {
        "type": _wire_name(cls),
        "message": _clip(message),
        "traceback": _clip(tb, keep_end=True),
    }
    if _allowed_name(cls) is not None:
        args = list(exc.args)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None:
            args = [exc.errno, exc.strerror, exc.filename]  # args alone lose the file name
        if (
            args
            and all(_is_plain(a, 0) for a in args)
            and sum(len(a) for a in args if isinstance(a, str)) <= _MAX_TEXT
        ):
            record["args"] = args
        fields = {}
        for name in _field_names(cls):
            value = getattr(exc, name, None)
            if value not in (None, {}, []) and _is_plain(value, 2):
                fields[name] = value
        if fields:
            record["fields"] = fields
    else:
        base = next((n for b in cls.__mro__ if (n := _allowed_name(b)) is not None), None)
        if base is not None:
            record["bases"] = [base]
    return record


def _remote_subclass(name: str, base: type[Exception]) -> type[RemoteCallError]:
    """RemoteCallError that is also ``base``, so ``except base`` catches it (cached)."""
    cls = _REMOTE_SUBCLASSES.get(name)
    if cls is None:
        try:
            cls = type(
                f"RemoteCallError[{name}]",
                (RemoteCallError, base),
                {"__module__": RemoteCallError.__module__},
            )
        except TypeError:  # incompatible layout: plain RemoteCallError
            cls = RemoteCallError
        _REMOTE_SUBCLASSES[name] = cls
    return cls


def _remote_traceback_cause(type_name: str, trace: str) -> RemoteCallError:
    return RemoteCallError(
        f"traceback of the {type_name} raised in the other process:\n{trace.rstrip()}",
        remote_type=type_name,
        remote_traceback=trace,
    )


def message_to_exception(err: Error | Mapping[str, Any]) -> Exception:
    """The exception an error message or record describes; never raises.

    An allow-listed type is re-created as itself (with ``remote_traceback`` set, and the
    remote traceback as its ``__cause__`` so that it prints); any other type becomes
    :class:`~rtcloud.errors.RemoteCallError`. A malformed record gives ProtocolError.
    """
    if not isinstance(err, Error):
        try:
            err = Error.from_record(0, err)
        except ProtocolError as bad:
            return ProtocolError(f"the peer sent a malformed error: {bad}")
    cls = allowed_error(err.type_name)
    result: Exception
    if cls is None:
        base_name = next((b for b in err.bases if b in ALLOWED_ERROR_NAMES), None)
        base = allowed_error(base_name) if base_name is not None else None
        remote_cls = RemoteCallError
        if base_name is not None and base is not None:
            remote_cls = _remote_subclass(base_name, base)
        text = f"{err.type_name}: {err.message}"
        try:
            result = remote_cls(text, remote_type=err.type_name, remote_traceback=err.traceback)
        except Exception:
            result = RemoteCallError(
                text, remote_type=err.type_name, remote_traceback=err.traceback
            )
    else:
        result = _rebuild(cls, err)
        if not hasattr(result, "remote_traceback"):
            try:
                result.remote_traceback = err.traceback  # type: ignore[attr-defined]
            except AttributeError:
                pass
    if err.traceback:
        result.__cause__ = _remote_traceback_cause(err.type_name, err.traceback)
    return result


def _rebuild(cls: type[Exception], err: Error) -> Exception:
    fields = {k: v for k, v in err.fields.items() if k in _field_names(cls)}
    attempts: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    if err.args or not err.message:
        attempts.append((err.args, fields))
    attempts += [((err.message,), fields), ((err.message,), {})]
    for args, kwargs in attempts:
        try:
            return cls(*args, **kwargs)
        except Exception:
            continue
    exc = cls.__new__(cls)
    exc.args = (err.message,)
    return exc
