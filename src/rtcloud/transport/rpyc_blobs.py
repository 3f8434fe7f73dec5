"""Large payloads of the script-to-server hop, carried beside RPyC.

RPyC carries every call, but moving megabytes through it costs several copies per byte.
Arguments or results of :data:`BLOB_THRESHOLD` bytes or more therefore travel over a second
TCP connection to 127.0.0.1, as raw bytes: the sender parks the encoded value (a
:class:`~rtcloud.rpc.codec.Encoded`) in a :class:`BlobStore` under a random ticket, the RPyC
call carries only the ticket, and the other side fetches the value with it. Each part (the
msgpack payload, then each out-of-band buffer) is received straight into a ``bytes`` object
of its own, so a 100 MB file is never copied again after the socket. The script side keeps
one such connection per thread, next to its RPyC connection.

Wire form, after the client sent ``RTCBLOB1`` + the server's 32-byte secret and got
``OKAY`` (anything else: ``DENY`` and the connection closes); integers little endian::

    G <ticket:16>   -> <value>         (a value of no parts: the ticket is unknown)
    P <value>       -> <ticket:16>
    value = <parts:u32> <size:u64> * parts, then the bytes of each part

Tickets expire after :data:`TICKET_TTL` seconds, so a script that died before fetching
its result leaves nothing behind for long. Only the standard library is used.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import struct
import threading
import time

from rtcloud.errors import ProtocolError, RTCloudError, ServiceUnavailableError
from rtcloud.rpc.codec import MAX_BUFFERS, MAX_MESSAGE_SIZE, Encoded
from rtcloud.transport.rpyc_stream import presents_secret, recv_exact, set_nodelay

__all__ = [
    "BLOB_HANDSHAKE",
    "BLOB_THRESHOLD",
    "TICKET_BYTES",
    "BlobClient",
    "BlobServer",
    "BlobStore",
]

logger = logging.getLogger(__name__)

BLOB_HANDSHAKE = b"RTCBLOB1"
#: Encoded arguments or results at least this large use the side channel.
BLOB_THRESHOLD = 64 << 10
TICKET_BYTES = 16
#: Seconds a parked payload waits to be fetched.
TICKET_TTL = 120.0
_COUNT = struct.Struct("<I")
_SIZE = struct.Struct("<Q")
_ACCEPTED, _REFUSED = b"OKAY", b"DENY"
_WAITALL = getattr(socket, "MSG_WAITALL", 0)


def _recv_part(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes as one bytes object (received in place where the OS allows)."""
    if _WAITALL:
        first = sock.recv(size, _WAITALL)
        if len(first) == size:
            return first
        if not first and size:
            raise ConnectionError("connection closed by the other side")
        pieces = [first]
        got = len(first)
        while got < size:  # interrupted: collect the rest (rare)
            more = sock.recv(min(size - got, 64 << 20), _WAITALL)
            if not more:
                raise ConnectionError("connection closed by the other side")
            pieces.append(more)
            got += len(more)
        return b"".join(pieces)
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], min(size - got, 16 << 20))
        if n == 0:
            raise ConnectionError("connection closed by the other side")
        got += n
    return bytes(buf)


def _send_value(sock: socket.socket, value: Encoded | None) -> None:
    """Send a value part by part; a value still arriving is sent as its pieces come (an
    error it raises on the way, after its sizes went out, leaves the connection unusable)."""
    sizes = [] if value is None else value.part_sizes()
    sock.sendall(_COUNT.pack(len(sizes)) + b"".join(_SIZE.pack(n) for n in sizes))
    for index in range(len(sizes)):
        assert value is not None
        for piece in value.iter_part(index):
            if len(piece):
                sock.sendall(piece)


def _recv_value(sock: socket.socket) -> Encoded | None:
    (count,) = _COUNT.unpack(recv_exact(sock, _COUNT.size))
    if count == 0:
        return None
    if count > MAX_BUFFERS + 1:
        raise ProtocolError(f"side channel: a value of {count} parts is not accepted")
    sizes = [n for (n,) in _SIZE.iter_unpack(recv_exact(sock, count * _SIZE.size))]
    if sum(sizes) > MAX_MESSAGE_SIZE:
        raise ProtocolError(f"side channel: a value of {sum(sizes)} bytes is not accepted")
    parts = [_recv_part(sock, n) for n in sizes]
    return Encoded(parts[0], [(part,) for part in parts[1:]])


def _os_timeouts(sock: socket.socket, seconds: float | None) -> None:
    """Set the OS receive and send time bounds of a blocking socket (best effort)."""
    total = 0.0 if seconds is None else max(float(seconds), 0.001)
    if os.name == "nt":
        value = struct.pack("=I", int(total * 1000))  # a DWORD of milliseconds
    else:
        whole = int(total)
        value = struct.pack("@ll", whole, int((total - whole) * 1_000_000))  # struct timeval
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, value)
        except OSError:  # not supported here: no bound rather than a slow socket
            logger.debug("side channel: the OS time bound could not be set")


class BlobStore:
    """Payloads parked under tickets until fetched (thread-safe, expiring)."""

    def __init__(self, ttl: float = TICKET_TTL) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[bytes, tuple[Encoded, float]] = {}

    def put(self, value: Encoded) -> bytes:
        """Park an encoded value (kept as it is, not copied); return its ticket."""
        ticket = secrets.token_bytes(TICKET_BYTES)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, item in self._items.items() if item[1] < now]:
                del self._items[key]
            self._items[ticket] = (value, now + self._ttl)
        return ticket

    def take(self, ticket: bytes) -> Encoded | None:
        """The value parked under ``ticket`` (once), or None."""
        with self._lock:
            item = self._items.pop(bytes(ticket), None)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class BlobServer:
    """Serves a :class:`BlobStore` on 127.0.0.1 to clients that present the secret."""

    def __init__(
        self, store: BlobStore, secret: bytes, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.store = store
        self._secret = secret
        self._sock = socket.create_server((host, port))
        self.host: str = self._sock.getsockname()[0]
        self.port: int = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Values sent to and received from clients (for diagnostics and tests).
        self.values_sent = 0
        self.values_received = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name="rtcloud-blobs", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)  # wake up to notice stop(), on every OS
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="rtcloud-blob", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            set_nodelay(conn)
            conn.settimeout(5.0)
            hello = recv_exact(conn, len(BLOB_HANDSHAKE) + len(self._secret))
            ok = presents_secret(hello, BLOB_HANDSHAKE, self._secret)
            conn.sendall(_ACCEPTED if ok else _REFUSED)
            if not ok:
                logger.warning("refused a side-channel client without this server's secret")
                return
            conn.settimeout(None)
            while not self._closed.is_set():
                op = conn.recv(1)
                if not op:
                    return
                if op == b"G":
                    value = self.store.take(recv_exact(conn, TICKET_BYTES))
                    self.values_sent += value is not None
                    try:
                        _send_value(conn, value)
                    except RTCloudError as exc:  # a result passed on as it came stopped coming
                        logger.warning(
                            "side channel: a result stopped arriving while it was passed on "
                            "(%s); closing the connection to tell the script",
                            exc,
                        )
                        return
                elif op == b"P":
                    value = _recv_value(conn)
                    if value is None:
                        return
                    self.values_received += 1
                    conn.sendall(self.store.put(value))
                else:
                    logger.warning("side channel: unknown request %r; closing", op)
                    return
        except (OSError, ConnectionError, ProtocolError) as exc:
            logger.debug("side channel connection ended: %s", exc)
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def stop(self) -> None:
        self._closed.set()
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class BlobClient:
    """One side-channel connection (use it from one thread at a time)."""

    def __init__(self, host: str, port: int, secret: bytes, timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            set_nodelay(sock)
            sock.sendall(BLOB_HANDSHAKE + secret)
            if recv_exact(sock, len(_ACCEPTED)) != _ACCEPTED:
                raise ServiceUnavailableError(
                    "the project server refused this client's secret on its side channel"
                )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)  # blocking: large parts are read in one go (see set_timeout)
        self._sock = sock

    def set_timeout(self, seconds: float | None) -> None:
        """Bound each send and receive by ``seconds`` (None: no bound).

        The bound is the operating system's (SO_RCVTIMEO/SO_SNDTIMEO): a Python-level
        timeout would make the socket non-blocking inside, and receiving a large part would
        then take many small reads and a copy instead of one read into place. A read that
        times out raises TimeoutError.
        """
        _os_timeouts(self._sock, seconds)

    def fetch(self, ticket: bytes) -> Encoded:
        """The encoded value parked under ``ticket``."""
        try:
            self._sock.sendall(b"G" + ticket)
            value = _recv_value(self._sock)
        except BlockingIOError as exc:  # the OS-level time bound passed
            raise TimeoutError(f"the side channel did not deliver in time ({exc})") from None
        if value is None:
            raise ProtocolError(
                "the project server no longer holds this call's result (it waited more than "
                f"{TICKET_TTL:g} s to be fetched, or was fetched already)"
            )
        return value

    def upload(self, value: Encoded) -> bytes:
        """Park an encoded value on the server; return the ticket of the call that uses it."""
        try:
            self._sock.sendall(b"P")
            _send_value(self._sock, value)
            return recv_exact(self._sock, TICKET_BYTES)
        except BlockingIOError as exc:  # the OS-level time bound passed
            raise TimeoutError(f"the side channel did not take the data in time ({exc})") from None

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
