"""RpcConnection: the RPC protocol as a state machine without I/O (the Sans-I/O model).

A transport (the server's async WebSocket endpoint, a service's sync client, a test) owns
the socket, the clock and the threads; it drives one :class:`RpcConnection` per link:

- **inputs**: :meth:`~RpcConnection.receive_frame` for each binary frame received;
  :meth:`~RpcConnection.fail_all` when the link is lost;
- **commands**: :meth:`~RpcConnection.call`, :meth:`~RpcConnection.send_result`,
  :meth:`~RpcConnection.send_error`, :meth:`~RpcConnection.cancel`,
  :meth:`~RpcConnection.expire`, :meth:`~RpcConnection.ping`, :meth:`~RpcConnection.close`;
- **outputs**: :meth:`~RpcConnection.events_received` (what happened) and
  :meth:`~RpcConnection.next_frame` / :meth:`~RpcConnection.frames_to_send` (what to write).

Either side may call the other. Every call made with :meth:`~RpcConnection.call` ends with
exactly one :class:`CallResult` or :class:`CallFailed` event: the reply, a cancel or
timeout, or the link failing (:meth:`~RpcConnection.fail_all` fails every pending call at
once with :class:`~rtcloud.errors.ServiceUnavailableError`). A call made with
``stream_result`` may see its large reply announced before that (:class:`ResultBegun`) and
handed on chunk by chunk (:class:`ResultPiece`); it still ends with exactly one of the two.

Sending is pull-based. Small messages wait in one queue; messages larger than a chunk, or
holding large binary values, become streams cut into chunks of ``Limits.chunk_size``
bytes, taken round-robin and only when the transport asks for the next frame (payload
buffers are sliced lazily, never copied up front). Small messages go first, but after
about one chunk's worth of them a waiting stream gets a chunk, so neither starves: a
``setResult`` queued behind a 100 MB ``getFile`` leaves after at most one chunk.

Deadlines are data: a call carries the seconds left when it was sent; the protocol has no
clock. The transport keeps the timers and calls :meth:`~RpcConnection.expire` when one
fires; the callee's transport sees ``IncomingCall.deadline_s`` and may stop waiting then.

The object is not thread-safe: a transport serializes access (one lock or one loop).

Pure module: no sockets, threads or clocks; it never imports asyncio, socket, threading,
time, rpyc, starlette or websockets.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rtcloud.errors import (
    CallCancelled,
    CallTimeout,
    ProtocolError,
    SerializationError,
    ServiceUnavailableError,
    ValidationError,
)
from rtcloud.rpc.codec import Buffer, Encoded, Spooled
from rtcloud.rpc.messages import (
    PROTOCOL_VERSION,
    Abort,
    Begin,
    Call,
    Cancel,
    Chunk,
    Error,
    Hello,
    Limits,
    Message,
    Ping,
    Pong,
    Result,
    Undecodable,
    decode_frame,
    decode_message,
    encode_chunk_parts,
    encode_frame,
    encode_message,
    error_to_message,
    message_to_exception,
    preview_call,
)

__all__ = [
    "Budget",
    "CallFailed",
    "CallResult",
    "Event",
    "HelloReceived",
    "IncomingCall",
    "IncomingCallCancelled",
    "Limits",
    "LoggerLike",
    "PartSink",
    "PingReceived",
    "PongReceived",
    "ResultBegun",
    "ResultPiece",
    "RpcConnection",
    "SpoolFactory",
    "State",
    "error_to_message",
    "message_to_exception",
]

_MAX_NAME = 256


class LoggerLike(Protocol):
    """The part of ``logging.Logger`` (or a LoggerAdapter) the connection uses."""

    def debug(self, msg: str, *args: Any) -> None: ...
    def warning(self, msg: str, *args: Any) -> None: ...


class PartSink(Protocol):
    """Where a large binary argument of an incoming call goes as its chunks arrive.

    Given by the connection's ``spool`` hook; its methods must not raise (a sink that cannot
    store the data keeps the error and reports it through the value :meth:`finish`
    returns, which the called method receives in place of the bytes).
    """

    def write(self, data: bytes | memoryview) -> None: ...
    def finish(self) -> Spooled: ...
    def discard(self) -> None: ...


class Budget(Protocol):
    """Bytes that several connections may hold in unfinished incoming messages together.

    Each connection already bounds its own (``Limits.max_bytes_in_flight``); a budget
    shared by every connection of a process bounds their sum, so many peers cannot each
    take a connection's worth. A transport that drives connections from several threads
    gives them a thread-safe one.
    """

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when that would pass the limit."""
        ...

    def give_back(self, size: int) -> None:
        """Return bytes reserved with :meth:`take`."""
        ...

    def describe(self) -> str:
        """What is held and the limit, for the error a refused peer gets."""
        ...


#: ``spool(call, placeholder, size)``: a sink for the argument of ``call`` (decoded ahead,
#: see :func:`~rtcloud.rpc.messages.preview_call`) that is the object ``placeholder``, of
#: ``size`` bytes; or None to receive it in memory as usual.
SpoolFactory = Callable[[Call, bytearray, int], PartSink | None]


class State(enum.IntEnum):
    """Connection state: OPEN, CLOSING (no new calls either way), CLOSED (link gone)."""

    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The peer introduced itself (always the first event)."""

    name: str
    version: int


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """The peer calls ``interface.method(*args, **kwargs)``; answer with send_result/error.

    ``deadline_s``: seconds the caller had left when it sent the call (None: no deadline).
    """

    call_id: int
    interface: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    deadline_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallResult:
    """One of our calls returned ``value``."""

    call_id: int
    value: Any


@dataclass(frozen=True, slots=True)
class CallFailed:
    """One of our calls failed: raise ``exception`` to the caller."""

    call_id: int
    exception: Exception


@dataclass(frozen=True, slots=True)
class ResultBegun:
    """A large result of one of our calls made with ``stream_result`` began to arrive.

    ``payload`` is the encoded value without its out-of-band parts, whose sizes are
    ``lengths``; their bytes follow, in order, as :class:`ResultPiece` events. A
    :class:`CallResult` (value None) says the last one arrived; a :class:`CallFailed` that
    they never will.
    """

    call_id: int
    payload: bytes
    lengths: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ResultPiece:
    """The next bytes of a result announced by :class:`ResultBegun` (a frame's view)."""

    call_id: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class IncomingCallCancelled:
    """The peer cancelled one of its calls to us (or the link was lost): drop its result."""

    call_id: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The peer pinged us; the pong is already queued."""

    nonce: int


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered our ping ``nonce``."""

    nonce: int


Event = (
    HelloReceived
    | IncomingCall
    | CallResult
    | CallFailed
    | ResultBegun
    | ResultPiece
    | IncomingCallCancelled
    | PingReceived
    | PongReceived
)


# ---------------------------------------------------------------------------------- streams


@dataclass(slots=True)
class _Pending:
    interface: str
    method: str
    deadline_s: float | None
    raw_result: bool = False
    stream_result: bool = False


class _OutStream:
    """A message being sent in chunks: a begin frame, then its parts sliced lazily."""

    __slots__ = ("begun", "key", "offset", "part", "parts", "seq", "stream_id")

    def __init__(self, stream_id: int, key: tuple[str, int] | None, parts: list[memoryview]):
        self.stream_id = stream_id
        self.key = key
        self.parts = parts
        self.part = 0
        self.offset = 0
        self.seq = 0
        self.begun = False

    @property
    def done(self) -> bool:
        return self.part >= len(self.parts)

    def next_frame(self, chunk_size: int) -> tuple[Buffer, ...]:
        if not self.begun:
            self.begun = True
            return (encode_frame(Begin(self.stream_id, tuple(len(p) for p in self.parts))),)
        view = self.parts[self.part]
        end = min(self.offset + chunk_size, len(view))
        frame = encode_chunk_parts(Chunk(self.stream_id, self.seq, view[self.offset : end]))
        self.seq += 1
        if end >= len(view):
            self.parts[self.part] = memoryview(b"")  # let a sent buffer go early
            self.part += 1
            self.offset = 0
        else:
            self.offset = end
        return frame


def _keepable(data: bytes | bytearray | memoryview) -> bytes | memoryview:
    """A received piece to keep: a view of an immutable frame as it is, anything else copied."""
    if type(data) is bytes:
        return data
    if isinstance(data, memoryview) and isinstance(data.obj, bytes):
        return data  # a slice of a received frame, which nobody can change
    return bytes(data)


#: Out-of-band parts of at least this many bytes are copied into one buffer as their chunks
#: arrive, instead of being kept as chunks and joined at the end (see _InStream).
ASSEMBLE_MIN = 2 * 1024 * 1024


class _InStream:
    """A message being received in chunks; keeps the pieces until the last one arrives.

    A large out-of-band part (a ``putFile``'s bytes) is copied into one ``bytearray`` as it
    arrives and reaches the decoder as that one piece (so a large binary value comes out as
    that ``bytearray``, with no second copy): each chunk's frame is freed as soon as it is
    copied, instead of the whole message's frames being held and joined at the end. Or it
    goes to a :class:`PartSink` (a file) chosen when its first chunk arrives, and reaches
    the decoder as what the sink's ``finish`` returns.
    """

    __slots__ = (
        "assemble",
        "buffer",
        "call_id",
        "filled",
        "lengths",
        "part",
        "pieces",
        "seq",
        "sink",
        "size",
    )

    def __init__(self, lengths: tuple[int, ...], assemble: bool = True) -> None:
        self.assemble = assemble
        self.lengths = lengths
        self.size = sum(lengths)
        # each part's bytes-like pieces, or the one Spooled a sink made of it
        self.pieces: list[list[Any]] = [[] for _ in lengths]
        self.part = 0
        self.filled = 0
        self.seq = 0
        self.buffer: bytearray | None = None
        self.sink: PartSink | None = None
        #: the call whose result this is, once it is passed on as it arrives (not kept)
        self.call_id: int | None = None

    def add(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next chunk of the current part (its size already checked)."""
        part = self.part
        length = self.lengths[part]
        filled = self.filled
        size = len(data)
        if self.call_id is not None:
            pass  # passed on by the connection, not kept
        elif self.sink is not None:
            self.sink.write(data if isinstance(data, (bytes, memoryview)) else bytes(data))
        elif part and length >= ASSEMBLE_MIN and self.assemble:
            if self.buffer is None:
                self.buffer = bytearray(length)
            self.buffer[filled : filled + size] = data
        else:
            self.pieces[part].append(_keepable(data))
        self.filled = filled + size
        self.seq += 1
        if self.filled == length:
            if self.sink is not None:
                self.pieces[part] = [self.sink.finish()]
                self.sink = None
            elif self.buffer is not None:
                self.pieces[part] = [self.buffer]
                self.buffer = None
            self.part += 1
            self.filled = 0

    def discard(self) -> None:
        """The message will not complete: let a sink drop what it stored."""
        if self.sink is not None:
            self.sink.discard()
            self.sink = None


# ---------------------------------------------------------------------------------- connection


class RpcConnection:
    """One end of an RPC link (see the module docstring for how a transport drives it).

    Args:
        name: this side's name, sent to the peer in the hello message (for its logs).
        limits: sizes and counts accepted and used when sending.
        logger: where to log state changes and dropped replies (DEBUG), and results that
            cannot be sent (WARNING); default ``logging.getLogger("rtcloud.rpc.protocol")``.
        spool: asked, when the first chunk of a large binary argument (``ASSEMBLE_MIN``
            bytes or more) of an incoming call arrives, where its bytes should go instead of
            memory (see :data:`SpoolFactory`); e.g. a data service writes a ``putFile``'s
            bytes into the target folder as they arrive.
        budget: shared with the other connections of this process: the bytes of unfinished
            incoming messages all of them may hold together (see :class:`Budget`).
        assemble: copy each large out-of-band part into one buffer as it arrives (see
            :class:`_InStream`); False keeps the received chunks as they are, for an end that
            passes the parts on uncopied (the project server relaying a volume to a script).
    """

    def __init__(
        self,
        name: str = "",
        *,
        limits: Limits | None = None,
        logger: LoggerLike | None = None,
        spool: SpoolFactory | None = None,
        budget: Budget | None = None,
        assemble: bool = True,
    ) -> None:
        self.name = name
        self._assemble = assemble
        self._spool = spool
        self._budget = budget
        self.limits = limits if limits is not None else Limits()
        if logger is None:
            # Imported here: the logging module loads threading, which the import-time
            # purity check of this package forbids.
            import logging

            logger = logging.getLogger(__name__)
        self.logger: LoggerLike = logger
        self._state = State.OPEN
        self._close_reason = ""
        self._peer: Hello | None = None
        self._next_call_id = 1
        self._next_stream_id = 1
        self._next_nonce = 1
        self._pending: dict[int, _Pending] = {}
        self._incoming: set[int] = set()
        self._events: list[Event] = []
        self._small: deque[bytes] = deque()
        self._streams: deque[_OutStream] = deque()
        self._stream_of: dict[tuple[str, int], _OutStream] = {}
        self._credit = self.limits.chunk_size
        self._partial: dict[int, _InStream] = {}
        self._in_flight = 0
        self._queue(Hello(PROTOCOL_VERSION, name[:_MAX_NAME]))

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self._state

    def _set_state(self, state: State) -> None:
        self.logger.debug("rpc connection %s: %s -> %s", self.name, self._state.name, state.name)
        self._state = state

    @property
    def peer_name(self) -> str | None:
        """The name the peer gave in its hello (None until it arrived)."""
        return None if self._peer is None else self._peer.name

    @property
    def pending_calls(self) -> frozenset[int]:
        """Ids of our calls still waiting for a reply."""
        return frozenset(self._pending)

    @property
    def incoming_calls(self) -> frozenset[int]:
        """Ids of the peer's calls we have not answered yet."""
        return frozenset(self._incoming)

    def close_expected(self) -> bool:
        """True when the transport may close the link: closing, nothing pending or queued."""
        return self._state is State.CLOSED or (
            self._state is State.CLOSING
            and not self._pending
            and not self._incoming
            and not self.has_frames_to_send()
        )

    # ------------------------------------------------------------------ commands

    def call(
        self,
        interface: str,
        method: str,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        deadline_s: float | None = None,
        *,
        raw_result: bool = False,
        stream_result: bool = False,
    ) -> int:
        """Queue a call to the peer and return its call id.

        With ``raw_result`` the reply's value arrives still encoded, as a
        :class:`~rtcloud.rpc.codec.Encoded`, for a caller that only passes it on. With
        ``stream_result`` too, a reply sent in chunks is passed on as it arrives: a
        :class:`ResultBegun` event once its payload is there, a :class:`ResultPiece` per
        chunk of its out-of-band parts, then a :class:`CallResult` with value None.

        Raises:
            ServiceUnavailableError: the connection is closing or closed.
            SerializationError: an argument cannot be sent.
            ValidationError: an empty or overlong name, or a negative or non-finite deadline.
        """
        if self._state is not State.OPEN:
            raise ServiceUnavailableError(
                f"{interface}.{method}: the connection is {self._state.name.lower()}"
                + (f" ({self._close_reason})" if self._close_reason else "")
            )
        for what, name in (("interface", interface), ("method", method)):
            if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
                raise ValidationError(f"{what} name must be 1 to {_MAX_NAME} characters: {name!r}")
        if deadline_s is not None:
            if (
                isinstance(deadline_s, bool)
                or not isinstance(deadline_s, (int, float))
                or not (math.isfinite(deadline_s) and deadline_s >= 0)
            ):
                raise ValidationError(
                    f"deadline_s must be None or seconds >= 0, not {deadline_s!r}"
                )
            deadline_s = float(deadline_s)
        kw = dict(kwargs or {})
        if not all(isinstance(k, str) for k in kw):
            raise SerializationError("keyword argument names must be strings")
        call_id = self._next_call_id
        self._queue(
            Call(call_id, interface, method, tuple(args), kw, deadline_s), ("call", call_id)
        )
        self._next_call_id += 1
        self._pending[call_id] = _Pending(
            interface, method, deadline_s, raw_result, raw_result and stream_result
        )
        return call_id

    def send_result(self, call_id: int, value: Any) -> bool:
        """Queue the result of the peer's call ``call_id``.

        Returns False (and sends nothing) when that call is not waiting for a reply: it was
        cancelled, already answered, or the link is gone. A value that cannot be sent is
        replaced by an error reply saying why.
        """
        if call_id not in self._incoming or self._state is State.CLOSED:
            return False
        self._incoming.discard(call_id)
        try:
            self._queue(Result(call_id, value), ("reply", call_id))
        except SerializationError as exc:
            self.logger.warning("the result of call %d cannot be sent: %s", call_id, exc)
            self._queue(Error.from_exception(call_id, exc))
        return True

    def send_error(self, call_id: int, exc: BaseException) -> bool:
        """Queue ``exc`` as the reply to the peer's call ``call_id`` (False: not waiting)."""
        if call_id not in self._incoming or self._state is State.CLOSED:
            return False
        self._incoming.discard(call_id)
        self._queue(Error.from_exception(call_id, exc))
        return True

    def reply(self, message: Result | Error) -> bool:
        """Queue a Result or Error made elsewhere (e.g. by a Dispatcher); False: not waiting."""
        if isinstance(message, Result):
            return self.send_result(message.call_id, message.value)
        if message.call_id not in self._incoming or self._state is State.CLOSED:
            return False
        self._incoming.discard(message.call_id)
        self._queue(message)
        return True

    def cancel(self, call_id: int, reason: Exception | None = None) -> bool:
        """Give up on our call ``call_id``: tell the peer, and fail it with ``reason``.

        The call ends with a :class:`CallFailed` event carrying ``reason`` (default
        :class:`~rtcloud.errors.CallCancelled`); a reply arriving later is ignored.
        Returns False when the call is not pending.
        """
        info = self._pending.pop(call_id, None)
        if info is None:
            return False
        stream = self._stream_of.pop(("call", call_id), None)
        if stream is not None:
            self._drop_stream(stream)  # the peer never sees a call whose stream is aborted
        else:
            self._queue(Cancel(call_id))
        if reason is None:
            reason = CallCancelled(f"{info.interface}.{info.method} was cancelled")
        self._events.append(CallFailed(call_id, reason))
        return True

    def expire(self, call_id: int, waited_s: float | None = None) -> bool:
        """Cancel our call ``call_id`` because its deadline passed: CallFailed(CallTimeout).

        ``waited_s`` (for the message) defaults to the call's own deadline.
        """
        info = self._pending.get(call_id)
        if info is None:
            return False
        waited = waited_s if waited_s is not None else info.deadline_s
        within = f"within {waited:g} s" if waited is not None else "before its deadline"
        return self.cancel(
            call_id,
            CallTimeout(
                f"{info.interface}.{info.method}: no result {within}; the service may be busy "
                "or stuck (pass rpc_timeout=SECONDS for calls that need longer)"
            ),
        )

    def ping(self) -> int:
        """Queue a keepalive ping and return its nonce (the PongReceived event echoes it)."""
        if self._state is State.CLOSED:
            raise ServiceUnavailableError(
                f"cannot ping: the connection is closed ({self._close_reason})"
            )
        nonce = self._next_nonce
        self._next_nonce += 1
        self._queue(Ping(nonce))
        return nonce

    def close(self) -> None:
        """Stop accepting new calls either way; pending ones may still finish.

        When :meth:`close_expected` turns true the transport closes the link and calls
        :meth:`fail_all`.
        """
        if self._state is State.OPEN:
            self._set_state(State.CLOSING)
            self._close_reason = "closing"

    def fail_all(self, reason: str = "the connection to the peer was lost") -> None:
        """The link is gone: fail every pending call at once and drop all queued data.

        Each of our pending calls gets a CallFailed event with
        :class:`~rtcloud.errors.ServiceUnavailableError` (``reason`` in its message); each
        of the peer's unanswered calls gets an IncomingCallCancelled event. Idempotent.
        """
        if self._state is State.CLOSED:
            return
        self._set_state(State.CLOSED)
        self._close_reason = reason
        for call_id, info in self._pending.items():
            exc = ServiceUnavailableError(f"{info.interface}.{info.method}: {reason}")
            self._events.append(CallFailed(call_id, exc))
        for call_id in sorted(self._incoming):
            self._events.append(IncomingCallCancelled(call_id))
        self._pending.clear()
        self._incoming.clear()
        self._small.clear()
        self._streams.clear()
        self._stream_of.clear()
        for stream in self._partial.values():
            stream.discard()
        self._partial.clear()
        self._release(self._in_flight)

    # ------------------------------------------------------------------ sending

    def _queue(self, message: Message, key: tuple[str, int] | None = None) -> None:
        envelope, buffers = encode_message(message, self.limits)
        size = len(envelope) + sum(len(b) for b in buffers)
        if size > self.limits.max_message_size:
            raise SerializationError(
                f"a message of {size} bytes is larger than the limit of "
                f"{self.limits.max_message_size} bytes; send the data in several calls"
            )
        if not buffers and len(envelope) <= self.limits.chunk_size:
            self._small.append(envelope)
            return
        stream = _OutStream(self._next_stream_id, key, [memoryview(envelope), *buffers])
        self._next_stream_id += 1
        self._streams.append(stream)
        if key is not None:
            self._stream_of[key] = stream

    def _drop_stream(self, stream: _OutStream) -> None:
        try:
            self._streams.remove(stream)
        except ValueError:
            return  # already fully sent
        if stream.begun:
            self._small.append(encode_frame(Abort(stream.stream_id)))

    def has_frames_to_send(self) -> bool:
        return bool(self._small or self._streams)

    def next_frame(self) -> bytes | None:
        """The next frame to write, or None when nothing is queued.

        Pull one frame at a time to apply backpressure: chunks of large messages are only
        made when asked for.
        """
        parts = self.next_frame_parts()
        if parts is None:
            return None
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)  # bytes(bytes): no copy

    def next_frame_parts(self) -> tuple[Buffer, ...] | None:
        """:meth:`next_frame` as the parts that make the frame one after the other, for a
        transport that writes them without joining them: a chunk's data is a view of the
        value being sent, not a copy."""
        if self._small and (self._credit > 0 or not self._streams):
            small = self._small.popleft()
            self._credit -= len(small)
            return (small,)
        if self._streams:
            stream = self._streams.popleft()
            parts = stream.next_frame(self.limits.chunk_size)
            if stream.done:
                if stream.key is not None:
                    self._stream_of.pop(stream.key, None)
            else:
                self._streams.append(stream)
            self._credit = self.limits.chunk_size
            return parts
        return None

    def frames_to_send(self) -> list[bytes]:
        """Every queued frame (all chunks of large messages too); prefer :meth:`next_frame`."""
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    # ------------------------------------------------------------------ receiving

    def events_received(self) -> list[Event]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def receive_frame(self, data: bytes | bytearray | memoryview) -> None:
        """Process one frame received from the peer (ignored once the connection is closed).

        Raises:
            ProtocolError: the peer broke the protocol. The connection is then CLOSED and
                every pending call has failed (see :meth:`fail_all`); close the link.
        """
        if self._state is State.CLOSED:
            return
        try:
            self._receive(data)
        except ProtocolError as exc:
            self.fail_all(f"the link was dropped because the peer sent an invalid message ({exc})")
            raise

    def _receive(self, data: bytes | bytearray | memoryview) -> None:
        frame = decode_frame(data, self.limits, lazy_results=True)
        if self._peer is None and not isinstance(frame, Hello):
            raise ProtocolError(
                "the peer did not start with a hello message; is it an rtcloud peer of the "
                "same version?"
            )
        if isinstance(frame, Chunk):
            self._on_chunk(frame)
        elif isinstance(frame, Begin):
            self._on_begin(frame)
        elif isinstance(frame, Abort):
            stream = self._partial.pop(frame.stream_id, None)
            if stream is not None:
                stream.discard()
                self._release(stream.size)
        else:
            self._on_message(frame)

    def _on_begin(self, begin: Begin) -> None:
        limits = self.limits
        if begin.stream_id in self._partial:
            raise ProtocolError(f"stream {begin.stream_id} was begun twice")
        if len(self._partial) >= limits.max_partial_messages:
            raise ProtocolError(
                f"more than {limits.max_partial_messages} messages are being sent at once"
            )
        size = sum(begin.lengths)
        if size > limits.max_message_size:
            raise ProtocolError(
                f"a message of {size} bytes is larger than the limit of "
                f"{limits.max_message_size} bytes"
            )
        if self._in_flight + size > limits.max_bytes_in_flight:
            raise ProtocolError(
                f"messages in progress would hold {self._in_flight + size} bytes, over the "
                f"limit of {limits.max_bytes_in_flight}"
            )
        if self._budget is not None and not self._budget.take(size):
            raise ProtocolError(
                f"a message of {size} bytes would pass this process's limit on unfinished "
                f"messages from all peers ({self._budget.describe()})"
            )
        self._partial[begin.stream_id] = _InStream(begin.lengths, self._assemble)
        self._in_flight += size

    def _release(self, size: int) -> None:
        """Bytes of unfinished incoming messages no longer held (done, aborted, dropped)."""
        self._in_flight -= size
        if self._budget is not None and size:
            self._budget.give_back(size)

    def _on_chunk(self, chunk: Chunk) -> None:
        stream = self._partial.get(chunk.stream_id)
        if stream is None:
            raise ProtocolError(f"chunk for stream {chunk.stream_id}, which was not begun")
        if chunk.seq != stream.seq:
            raise ProtocolError(
                f"chunk {chunk.seq} of stream {chunk.stream_id} arrived out of order or twice "
                f"(expected chunk {stream.seq})"
            )
        size = len(chunk.data)
        room = stream.lengths[stream.part] - stream.filled
        if not 0 < size <= room:
            raise ProtocolError(
                f"chunk {chunk.seq} of stream {chunk.stream_id} holds {size} bytes where "
                f"1 to {room} were expected"
            )
        if (
            self._spool is not None
            and stream.call_id is None
            and stream.filled == 0
            and stream.part
            and stream.lengths[stream.part] >= ASSEMBLE_MIN
        ):
            stream.sink = self._sink_for(stream)
        passed_on = stream.call_id
        stream.add(chunk.data)
        if passed_on is not None:
            self._events.append(ResultPiece(passed_on, _keepable(chunk.data)))
        elif stream.part == 1 and stream.filled == 0 and len(stream.lengths) > 1:
            self._pass_on(stream)  # its payload is here: a result to pass on as it comes?
        if stream.part < len(stream.lengths):
            return
        del self._partial[chunk.stream_id]
        self._release(stream.size)
        if passed_on is not None:
            if self._pending.pop(passed_on, None) is not None:
                self._events.append(CallResult(passed_on, None))
            return
        head = stream.pieces[0]
        envelope = head[0] if len(head) == 1 else b"".join(head)
        self._on_message(
            decode_message(envelope, stream.pieces[1:], self.limits, lazy_results=True)
        )

    def _pass_on(self, stream: _InStream) -> None:
        """Start passing a result on as it arrives, when its call asked for that."""
        if not any(pending.stream_result for pending in self._pending.values()):
            return
        head = stream.pieces[0]
        envelope = head[0] if len(head) == 1 else b"".join(head)
        stream.pieces[0] = [envelope]
        placeholders: list[list[Any]] = [[] for _ in stream.lengths[1:]]
        message = decode_message(envelope, placeholders, self.limits, lazy_results=True)
        if not isinstance(message, Result) or not isinstance(message.value, Encoded):
            return
        pending = self._pending.get(message.call_id)
        if pending is None or not pending.stream_result:
            return
        stream.call_id = message.call_id
        self._events.append(
            ResultBegun(message.call_id, bytes(message.value.payload), stream.lengths[1:])
        )

    def _sink_for(self, stream: _InStream) -> PartSink | None:
        """Ask the spool hook where the part about to arrive should go (None: memory)."""
        assert self._spool is not None
        head = stream.pieces[0]
        envelope = head[0] if len(head) == 1 else b"".join(head)
        stream.pieces[0] = [envelope]
        placeholders = [bytearray() for _ in stream.lengths[1:]]
        call = preview_call(envelope, placeholders, self.limits)
        if call is None:
            return None
        return self._spool(call, placeholders[stream.part - 1], stream.lengths[stream.part])

    def _on_message(self, message: Message | Undecodable) -> None:
        if isinstance(message, Hello):
            self._on_hello(message)
        elif isinstance(message, Call):
            self._on_call(message)
        elif isinstance(message, Result):
            pending = self._pending.pop(message.call_id, None)
            if pending is None:
                self.logger.debug("dropped the result of call %d (not pending)", message.call_id)
            elif pending.raw_result or not isinstance(message.value, Encoded):
                self._events.append(CallResult(message.call_id, message.value))
            else:
                try:
                    value = message.value.decode(max_depth=self.limits.max_depth)
                except ProtocolError as exc:
                    self._events.append(
                        CallFailed(
                            message.call_id,
                            ProtocolError(
                                f"{pending.interface}.{pending.method}: the reply could not "
                                f"be decoded: {exc}"
                            ),
                        )
                    )
                else:
                    self._events.append(CallResult(message.call_id, value))
        elif isinstance(message, Error):
            if self._pending.pop(message.call_id, None) is not None:
                self._events.append(CallFailed(message.call_id, message_to_exception(message)))
            else:
                self.logger.debug("dropped the error of call %d (not pending)", message.call_id)
        elif isinstance(message, Cancel):
            self._on_cancel(message.call_id)
        elif isinstance(message, Ping):
            if self._state is not State.CLOSED:
                self._queue(Pong(message.nonce))
            self._events.append(PingReceived(message.nonce))
        elif isinstance(message, Pong):
            self._events.append(PongReceived(message.nonce))
        else:
            self._on_undecodable(message)

    def _on_hello(self, hello: Hello) -> None:
        if self._peer is not None:
            raise ProtocolError("the peer sent a second hello message")
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the peer speaks version {hello.version} of the rtcloud RPC protocol and this "
                f"side version {PROTOCOL_VERSION}; install the same rtcloud version on both "
                "computers"
            )
        self._peer = hello
        self._events.append(HelloReceived(hello.name, hello.version))

    def _accept_call(self, call_id: int, what: str) -> bool:
        """Register the peer's call, or answer it with an error when it cannot be taken."""
        if call_id in self._incoming:
            raise ProtocolError(f"call id {call_id} is already in progress")
        if self._state is not State.OPEN:
            refusal: Exception = ServiceUnavailableError(
                f"{what}: the other side is shutting down and takes no new calls"
            )
        elif len(self._incoming) >= self.limits.max_incoming_calls:
            refusal = ServiceUnavailableError(
                f"{what}: {len(self._incoming)} calls are already in progress; try again later"
            )
        else:
            self._incoming.add(call_id)
            return True
        self._queue(Error.from_exception(call_id, refusal))
        return False

    def _on_call(self, call: Call) -> None:
        if self._accept_call(call.call_id, f"{call.interface}.{call.method}"):
            self._events.append(
                IncomingCall(
                    call.call_id,
                    call.interface,
                    call.method,
                    call.args,
                    call.kwargs,
                    call.deadline_s,
                )
            )

    def _on_cancel(self, call_id: int) -> None:
        stream = self._stream_of.pop(("reply", call_id), None)
        if stream is not None:
            self._drop_stream(stream)
        if call_id in self._incoming:
            self._incoming.discard(call_id)
            self._events.append(IncomingCallCancelled(call_id))

    def _on_undecodable(self, message: Undecodable) -> None:
        if message.kind == "call":
            what = f"{message.interface}.{message.method}"
            if self._accept_call(message.call_id, what):
                self.send_error(
                    message.call_id,
                    ProtocolError(f"{what}: the arguments could not be decoded: {message.error}"),
                )
            return
        info = self._pending.pop(message.call_id, None)
        if info is not None:
            exc = ProtocolError(
                f"{info.interface}.{info.method}: the reply could not be decoded: {message.error}"
            )
            self._events.append(CallFailed(message.call_id, exc))
