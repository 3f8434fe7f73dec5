"""A client WebSocket on a blocking socket: one thread reads, any thread sends.

websockets' threaded client reads its socket in a thread of its own and hands every message
to the reading code through a queue, which costs a thread switch per message (0.07-0.15 ms
on a small VM, measured with an echo server). A remote service reads its link on one thread
anyway, so :class:`WsSocket` drives websockets' sans-I/O :class:`~websockets.client.ClientProtocol`
itself: the thread iterating :meth:`WsSocket.messages` reads the socket, parses and gets each
message at once, and any thread may :meth:`WsSocket.send`.

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
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from rtcloud.redact import RedactSecrets

__all__ = ["LinkClosed", "WsSocket"]

#: websockets logs each handshake header at DEBUG, the session among them: masked here.
_PROTOCOL_LOGGER = logging.getLogger("rtcloud.transport.ws_socket.protocol")
_PROTOCOL_LOGGER.addFilter(RedactSecrets())

#: Bytes read from the socket at a time: a 1 MiB chunk frame in one read.
RECV_BUFSIZE = (1 << 20) + (64 << 10)
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

    def send(self, data: bytes) -> None:
        """Send one binary message (any thread). LinkClosed once the link is closing."""
        with self._send_lock:
            with self._state_lock:
                if self._protocol.state is not State.OPEN:
                    raise LinkClosed(f"the WebSocket is {self._protocol.state.name.lower()}")
                self._protocol.send_binary(data)
                out = self._protocol.data_to_send()
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


def _write(sock: socket.socket, chunks: list[bytes]) -> None:
    for chunk in chunks:
        if chunk:
            sock.sendall(chunk)
        else:  # the protocol's end of stream: half-close
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
