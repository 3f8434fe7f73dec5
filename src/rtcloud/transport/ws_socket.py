"""A client WebSocket on a blocking socket: one thread reads, any thread sends.

websockets' threaded client reads its socket in a thread of its own and hands every message
to the reading code through a queue, which costs a thread switch per message (0.07-0.15 ms
on a small VM, measured with an echo server). A remote service reads its link on one thread
anyway, so :class:`WsSocket` drives websockets' sans-I/O :class:`~websockets.client.ClientProtocol`
itself: the thread iterating :meth:`WsSocket.messages` reads the socket, parses and gets each
message at once, and any thread may :meth:`WsSocket.send`.

A large message (a volume's chunks) is framed here rather than by websockets: each part of
it is masked straight from the caller's buffer and written as it is, where websockets would
join the parts, mask the whole and copy it once more into the frame.

Keepalive: a small thread sends a ping when nothing has arrived for ``ping_interval`` seconds,
and declares the link lost when nothing at all (pong or data) has arrived for
``ping_timeout`` seconds more, so a server that vanished without closing (a dropped network)
is noticed. The socket itself stays blocking without a timeout, so a large send on a slow
link is never cut off. Only the standard library and websockets are used: this runs on
Windows and macOS.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode

try:
    from websockets.speedups import apply_mask
except ImportError:  # a build of websockets without its C extension
    from websockets.utils import apply_mask
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from rtcloud.redact import RedactSecrets

__all__ = ["REPLACED", "LinkClosed", "WsSocket"]

#: Close code the server gives a service whose place another service of its role took: that
#: service stops (two services reconnecting in turn pushed each other out forever, and every
#: call on them failed).
REPLACED = 4409

#: websockets logs each handshake header at DEBUG, the session among them: masked here.
_PROTOCOL_LOGGER = logging.getLogger("rtcloud.transport.ws_socket.protocol")
_PROTOCOL_LOGGER.addFilter(RedactSecrets())

Buffer = bytes | bytearray | memoryview

#: Bytes read from the socket at a time: a 1 MiB chunk frame in one read.
RECV_BUFSIZE = (1 << 20) + (64 << 10)
#: Messages from this size on are framed here (:func:`_masked_frame`), not by websockets.
DIRECT_FRAME_SIZE = 64 << 10
USER_AGENT = "rtcloud"


class LinkClosed(ConnectionError):
    """The WebSocket is closed: by either side, or lost."""


class WsSocket:
    """An open client WebSocket; make one with :meth:`connect`."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: ClientProtocol,
        pending: Sequence[Frame] = (),
        *,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
    ) -> None:
        self.socket = sock
        self._protocol = protocol
        self._pending = list(pending)  # frames that came with the handshake response
        self._state_lock = threading.Lock()  # guards the protocol object
        self._send_lock = threading.Lock()  # one writer at a time: whole frames, in order
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._buffer = bytearray(RECV_BUFSIZE)
        self._closing = False
        self._lost = ""  # why the keepalive gave up, for the reader to raise
        self._last_heard = time.monotonic()
        self._stopped = threading.Event()
        threading.Thread(target=self._keepalive, name="rtcloud-ws-keepalive", daemon=True).start()

    # ------------------------------------------------------------ opening

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        open_timeout: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
    ) -> WsSocket:
        """Connect to ``url`` (ws:// or wss://) and do the opening handshake.

        Raises:
            websockets.exceptions.InvalidStatus: the server answered with another status
                (e.g. 403); ``exc.response.status_code`` says which.
            websockets.exceptions.InvalidHandshake: the answer was not a WebSocket one.
            OSError: the connection failed or timed out (TimeoutError).
        """
        uri = parse_uri(url)
        deadline = time.monotonic() + open_timeout
        sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=uri.host)
            protocol = ClientProtocol(uri, max_size=None, logger=_PROTOCOL_LOGGER)
            request = protocol.connect()
            request.headers["User-Agent"] = USER_AGENT
            for name, value in (headers or {}).items():
                request.headers[name] = value
            protocol.send_request(request)
            _write(sock, protocol.data_to_send())
            pending: list[Frame] = []
            response: Response | None = None
            while response is None:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(1 << 16)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                for event in protocol.events_received():
                    if isinstance(event, Response):
                        response = event
                    elif isinstance(event, Frame):
                        pending.append(event)
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                if not data and response is None:
                    raise LinkClosed(f"{url}: the server closed the connection in the handshake")
            _write(sock, protocol.data_to_send())  # e.g. a pong or a close reply
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, protocol, pending, ping_interval=ping_interval, ping_timeout=ping_timeout)

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the server sent (None: none arrived)."""
        received = self._protocol.close_rcvd
        return None if received is None else int(received.code)

    # ------------------------------------------------------------ reading

    def messages(self) -> Iterator[bytes | str]:
        """Every message as it arrives, in the calling thread; ends when the link closes.

        Raises:
            LinkClosed: nothing arrived for the keepalive's time (the link is then closed).
            OSError: the socket failed.
        """
        fragments: list[bytes] = []
        text = False
        frames, self._pending = self._pending, []
        try:
            while True:
                for frame in frames:
                    opcode = frame.opcode
                    if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
                        if frame.fin:
                            data = frame.data
                            yield bytes(data).decode() if opcode is Opcode.TEXT else bytes(data)
                        else:
                            fragments, text = [bytes(frame.data)], opcode is Opcode.TEXT
                    elif opcode is Opcode.CONT:
                        fragments.append(bytes(frame.data))
                        if frame.fin:
                            whole = b"".join(fragments)
                            fragments = []
                            yield whole.decode() if text else whole
                    elif opcode is Opcode.CLOSE:
                        self._closing = True
                    # a PING is answered by the protocol itself
                if self._protocol.state is State.CLOSED:
                    return
                try:
                    count = self.socket.recv_into(self._buffer)
                except OSError:
                    if self._lost:
                        raise LinkClosed(self._lost) from None
                    if self._closing:
                        return  # our own close() shut the socket
                    raise
                if self._lost:
                    raise LinkClosed(self._lost)
                self._last_heard = time.monotonic()
                with self._state_lock:
                    if count:
                        self._protocol.receive_data(bytes(memoryview(self._buffer)[:count]))
                    else:
                        self._protocol.receive_eof()
                    events = self._protocol.events_received()
                    out = self._protocol.data_to_send()
                self._send_out(out)
                if not count:
                    return
                frames = [event for event in events if isinstance(event, Frame)]
        finally:
            self._stopped.set()
            self._shutdown()

    def _keepalive(self) -> None:
        """Ping a quiet link; give up on one that stays silent (runs in its own thread)."""
        pinged_at = 0.0
        while not self._stopped.wait(min(1.0, self._ping_interval)):
            now = time.monotonic()
            silent = now - self._last_heard
            if silent > self._ping_interval + self._ping_timeout:
                self._lost = (
                    f"the server sent nothing for {silent:.0f} s (not even a keepalive "
                    "answer); the link is considered lost"
                )
                self._abort()
                return
            if silent > self._ping_interval and pinged_at < self._last_heard and not self._closing:
                self._ping()
                pinged_at = now

    # ------------------------------------------------------------ writing

    def send(self, data: Buffer | Sequence[Buffer]) -> None:
        """Send one binary message (any thread). LinkClosed once the link is closing.

        ``data``: the message, or the parts that make it one after the other (sent without
        being joined).
        """
        parts: Sequence[Buffer] = (
            (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data
        )
        size = sum(len(part) for part in parts)
        with self._send_lock:
            with self._state_lock:
                protocol = self._protocol
                if protocol.state is not State.OPEN:
                    raise LinkClosed(f"the WebSocket is {protocol.state.name.lower()}")
                if size < DIRECT_FRAME_SIZE or protocol.extensions:
                    protocol.send_binary(parts[0] if len(parts) == 1 else b"".join(parts))
                    out = protocol.data_to_send()
                else:
                    if protocol.expect_continuation_frame:  # never: we send whole messages
                        raise LinkClosed("the WebSocket is inside a fragmented message")
                    out = _masked_frame(parts, size)
            try:
                _write(self.socket, out)
            except OSError as exc:
                raise LinkClosed(f"the connection was lost while sending: {exc}") from exc

    def _send_out(self, out: list[bytes], wait: float = -1) -> None:
        """Write protocol output (pongs, pings, close frames); a failed write is the
        reader's to notice. ``wait``: seconds to wait for a busy sender (-1: as long as it
        takes)."""
        if not out or not self._send_lock.acquire(timeout=wait):
            return
        try:
            _write(self.socket, out)
        except OSError:
            pass
        finally:
            self._send_lock.release()

    def _ping(self) -> None:
        with self._state_lock:
            if self._protocol.state is not State.OPEN:
                return
            self._protocol.send_ping(os.urandom(4))
            out = self._protocol.data_to_send()
        self._send_out(out)

    # ------------------------------------------------------------ closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and unblock the reader (any thread; idempotent)."""
        self._closing = True
        self._stopped.set()
        with self._state_lock:
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(code, reason)
            out = self._protocol.data_to_send()
        self._send_out(out, wait=1.0)
        self._shutdown()

    def _abort(self) -> None:
        self._closing = True
        with self._state_lock:
            self._protocol.fail(1011, "keepalive timeout")
            self._protocol.data_to_send()
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        self.socket.close()


def _masked_frame(parts: Sequence[Buffer], size: int) -> list[bytes]:
    """One final binary frame of a client (RFC 6455 section 5.2) holding ``parts`` one after
    the other: its header, then each part masked on its own (one copy each, where building
    the frame whole would join, mask and copy it again)."""
    mask = secrets.token_bytes(4)
    if size < 126:
        header = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    out = [header + mask]
    offset = 0
    for part in parts:
        turn = offset % 4  # the mask runs on across the parts
        out.append(apply_mask(part, mask[turn:] + mask[:turn]))
        offset += len(part)
    return out


def _write(sock: socket.socket, chunks: list[bytes]) -> None:
    for chunk in chunks:
        if chunk:
            sock.sendall(chunk)
        else:  # the protocol's end of stream: half-close
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
