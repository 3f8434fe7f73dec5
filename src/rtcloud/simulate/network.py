"""NetworkProxy: a TCP proxy that makes a link bad on purpose, for tests and benchmarks.

Put it between a remote service and the server to see how rtcloud behaves over a far or
failing network without touching the kernel (many machines, CI among them, have no netem):

    proxy = NetworkProxy(("127.0.0.1", server_port), delay=0.025, rate=2_500_000).start()
    # rtcloud data-service -s 127.0.0.1:<proxy.port> ...      (25 ms each way: 50 ms RTT)
    proxy.stall(); ...; proxy.resume()    # the path stops carrying bytes, then carries again
    proxy.cut()                           # every connection reset at once
    proxy.cut_mid_message()               # the next chunk goes half way, then the reset
    proxy.refuse(True)                    # new connections are refused (the path is down)

Each direction of each connection has a reader and a writer thread: the reader stamps what
it receives with the time it may leave (``delay`` seconds later); the writer sends it then,
no faster than ``rate`` bytes per second, while the path is not stalled. Standard library
only; it listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import struct
import threading
import time

__all__ = ["NetworkProxy"]

logger = logging.getLogger(__name__)

_PIECE = 16 * 1024  # bytes sent at a time (pacing is per piece)


def _reset(sock: socket.socket) -> None:
    """Close a socket with a reset (as a dropped link looks to the other end)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Direction:
    """Bytes from ``src`` to ``dst``, delayed, paced and held while the path is stalled."""

    def __init__(self, pipe: _Pipe, src: socket.socket, dst: socket.socket, name: str) -> None:
        self.pipe = pipe
        self.src, self.dst = src, dst
        self.name = name
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()
        self.eof = False
        self.finished = False
        self.next_send = 0.0

    def start(self) -> None:
        for target, what in ((self._read, "read"), (self._write, "write")):
            threading.Thread(
                target=target, name=f"netproxy-{self.name}-{what}", daemon=True
            ).start()

    def _read(self) -> None:
        proxy = self.pipe.proxy
        try:
            while True:
                data = self.src.recv(65536)
                if not data:
                    break
                due = time.monotonic() + proxy.delay
                with self.ready:
                    self.queue.append((due, data))
                    self.ready.notify_all()
        except OSError:
            pass
        with self.ready:
            self.eof = True
            self.ready.notify_all()

    def _next(self) -> bytes | None:
        """The next piece that may leave now (waiting for it), or None at the end."""
        proxy = self.pipe.proxy
        with self.ready:
            while True:
                if self.pipe.closed:
                    return None
                if not self.queue:
                    if self.eof:
                        return None
                    self.ready.wait(0.5)
                    continue
                due, data = self.queue[0]
                wait = due - time.monotonic()
                if not proxy.flowing:
                    self.ready.wait(0.05)
                    continue
                if wait > 0:
                    self.ready.wait(wait)
                    continue
                if len(data) > _PIECE:
                    self.queue[0] = (due, data[_PIECE:])
                    return data[:_PIECE]
                self.queue.popleft()
                return data

    def _write(self) -> None:
        proxy = self.pipe.proxy
        try:
            while True:
                data = self._next()
                if data is None:
                    break
                if proxy.rate:
                    now = time.monotonic()
                    if self.next_send > now:
                        time.sleep(self.next_send - now)
                    self.next_send = max(now, self.next_send) + len(data) / proxy.rate
                if proxy.take_cut() and len(data) >= 2:
                    self.dst.sendall(data[: len(data) // 2])
                    self.pipe.close()
                    return
                self.dst.sendall(data)
                proxy.count(len(data))
            if not self.pipe.closed:
                with contextlib.suppress(OSError):
                    self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.pipe.close()
            return
        self.finished = True
        if all(d.finished for d in self.pipe.directions):
            self.pipe.close(reset=False)  # both ends closed theirs: a clean end


class _Pipe:
    """One proxied connection: the client's socket and ours to the upstream server."""

    def __init__(self, proxy: NetworkProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.sockets = (client, upstream)
        self.closed = False
        self.directions = (
            _Direction(self, client, upstream, "up"),
            _Direction(self, upstream, client, "down"),
        )

    def start(self) -> None:
        for direction in self.directions:
            direction.start()

    def close(self, reset: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.forget(self)
        for sock in self.sockets:
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        for direction in self.directions:
            with direction.ready:
                direction.ready.notify_all()


class NetworkProxy:
    """Forward TCP connections to ``upstream`` through a link with the given flaws.

    Args:
        upstream: (host, port) to forward to.
        delay: seconds each byte takes one way (the round trip is twice this).
        rate: bytes per second each direction of a connection carries (None: no limit).
        host, port: where to listen (port 0: any free port, see :attr:`port`).
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        delay: float = 0.0,
        rate: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.delay = float(delay)
        self.rate = float(rate) if rate else None
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._flow = threading.Event()
        self._flow.set()
        self._refusing = False
        self._cut_armed = False
        self._stopped = False
        self.forwarded = 0  # bytes carried, both directions
        self.accepted = 0  # connections carried

    @property
    def address(self) -> str:
        """``host:port`` to give a service instead of the server's."""
        return f"{self.host}:{self.port}"

    @property
    def flowing(self) -> bool:
        return self._flow.is_set()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    def start(self) -> NetworkProxy:
        threading.Thread(target=self._accept, name="netproxy-accept", daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing or self._stopped:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(self, client, upstream)
            with self._lock:
                self._pipes.add(pipe)
                self.accepted += 1
            pipe.start()

    # ------------------------------------------------------------ faults

    def stall(self) -> None:
        """Stop carrying bytes (they wait, as on a link that went silent)."""
        self._flow.clear()

    def resume(self) -> None:
        """Carry bytes again, the waiting ones first."""
        self._flow.set()

    def cut(self) -> None:
        """Reset every current connection at once."""
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close()

    def cut_mid_message(self) -> None:
        """The next chunk carried (either way) goes half way; then its connection is reset."""
        with self._lock:
            self._cut_armed = True

    def refuse(self, refusing: bool = True) -> None:
        """Refuse new connections (reset at once) while ``refusing``."""
        self._refusing = refusing

    def take_cut(self) -> bool:
        if not self._cut_armed:
            return False
        with self._lock:
            armed, self._cut_armed = self._cut_armed, False
        return armed

    def count(self, nbytes: int) -> None:
        self.forwarded += nbytes  # approximate under races: a statistic only

    def forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def stop(self) -> None:
        """Stop listening and reset every connection."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        with contextlib.suppress(OSError):
            self._listener.close()
        self._flow.set()
        self.cut()

    def __enter__(self) -> NetworkProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
