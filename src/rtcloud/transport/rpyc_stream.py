"""Socket plumbing of the script-to-server hop: a fast RPyC stream and the secret handshake.

Stock RPyC (measured with rpyc 6.0.2 on loopback) moves 100 MB at about 3 MB/s: its socket
stream re-slices the remaining bytes after every ``send`` (quadratic), it reads in 8 KB
pieces, Nagle's algorithm delays small replies by up to 50 ms, and every frame over 3 KB is
zlib-compressed. :func:`tune_connection` fixes all four on one connection: ``sendall`` of the
whole buffer, ``recv_into`` a preallocated buffer, TCP_NODELAY, and no compression.

Both the RPyC port and its side channel (:mod:`rtcloud.transport.rpyc_blobs`) start with the
same handshake: a tag and the server's secret, checked by :func:`presents_secret`.
"""

from __future__ import annotations

import hmac
import math
import select
import socket
from typing import Any

from rpyc.core.stream import SocketStream
from rpyc.lib import Timeout

__all__ = ["FastSocketStream", "presents_secret", "recv_exact", "set_nodelay", "tune_connection"]

#: Bytes a read asks the socket for: a small RPyC message (header and payload) in one call.
READ_BUFFER = 64 << 10


def recv_exact(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes; ConnectionError if the peer closes before."""
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the other side")
        data += chunk
    return bytes(data)


def presents_secret(hello: bytes, tag: bytes, secret: bytes) -> bool:
    """Whether a client's first bytes are ``tag`` + ``secret`` (compared in constant time)."""
    return hello[: len(tag)] == tag and hmac.compare_digest(hello[len(tag) :], secret)


def set_nodelay(sock: socket.socket) -> None:
    """Send small messages at once (no Nagle delay)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class FastSocketStream(SocketStream):  # type: ignore[misc]
    """A SocketStream whose reads and writes cost O(n) for a payload of n bytes.

    Reads go through a small buffer: RPyC reads each frame in two steps (its 5-byte header,
    then the payload), and one ``recv`` usually brings both, so a small message costs one
    system call instead of two. :meth:`poll` answers at once while buffered bytes wait, and
    keeps one ``select.poll`` object instead of making one per message (where the platform
    has none, e.g. Windows, RPyC's own ``poll`` is used).
    """

    __slots__ = ("_buffer", "_end", "_poller", "_start", "_view")

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0  # buffered bytes not read yet: self._buffer[self._start:self._end]
        self._end = 0
        self._poller: Any = None
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from exc

    def poll(self, timeout: Any) -> bool:
        if self._end > self._start:
            return True
        if self._poller is None:
            return bool(super().poll(timeout))
        left = Timeout(timeout).timeleft()
        try:
            return bool(self._poller.poll(None if left is None else math.ceil(left * 1000)))
        except (OSError, ValueError) as exc:  # the socket was closed meanwhile
            raise EOFError(exc) from exc

    def read(self, count: int) -> bytes:
        start, end = self._start, self._end
        if end - start >= count:  # all buffered: the usual case for a payload
            self._start = start + count
            return bytes(self._view[start : start + count])
        out = bytearray(count)
        view = memoryview(out)
        got = end - start
        view[:got] = self._view[start:end]
        self._start = self._end = 0
        while got < count:
            if count - got >= len(self._buffer):  # large: straight into the result
                got += self._recv_into(view[got:], min(count - got, 4 << 20))
                continue
            n = self._recv_into(self._view, len(self._buffer))
            take = min(n, count - got)
            view[got : got + take] = self._view[:take]
            got += take
            self._start, self._end = take, n
        return bytes(out)

    def _recv_into(self, target: memoryview, size: int) -> int:
        while True:
            try:
                n: int = self.sock.recv_into(target, size)
            except (TimeoutError, InterruptedError):
                continue
            except OSError as exc:
                self.close()
                raise EOFError(exc) from exc
            if n == 0:
                self.close()
                raise EOFError("connection closed by peer")
            return n


def tune_connection(conn: Any) -> None:
    """Swap a fresh RPyC connection's stream for a FastSocketStream and turn compression off."""
    channel = conn._channel
    stream = channel.stream
    sock = getattr(stream, "sock", None)
    if isinstance(sock, socket.socket) and not isinstance(stream, FastSocketStream):
        set_nodelay(sock)
        channel.stream = FastSocketStream(sock)
    channel.compress = False
