"""The script side of the script-to-server hop: RPyC connections and interface proxies.

:func:`connect_from_info_file` reads the connection file a running server wrote (address and
secret), and returns a :class:`ServerConnection` whose :meth:`~ServerConnection.interface`
gives one proxy per interface. A proxy has exactly the methods the server exposes; each call
encodes its arguments with :mod:`rtcloud.rpc.codec`, waits for the result with a deadline
and re-raises a remote error as its own type (``ValidationError``, ``TimeoutError``,
``FileNotFoundError`` ...). Every calling thread gets its own RPyC connection, so a thread
waiting for a volume never blocks another sending feedback.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rpyc
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.channel import Channel
from rpyc.utils.factory import connect_channel

from rtcloud.errors import AuthenticationError, CallTimeout, ServiceUnavailableError, StateError
from rtcloud.rpc.codec import decode, encode
from rtcloud.rpc.messages import message_to_exception
from rtcloud.server.hub import DEADLINE_MARGIN
from rtcloud.transport.rpyc_bridge import ACCEPTED, HANDSHAKE, rpyc_config
from rtcloud.transport.rpyc_stream import FastSocketStream, set_nodelay, tune_connection

__all__ = ["RemoteInterface", "ServerConnection", "connect_from_info_file"]


def connect_from_info_file(path: Path, rpyc_timeout: float) -> ServerConnection | None:
    """Connect to the server described by ``path``; None when that server is not running."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        host, port, secret = (
            str(info["host"]),
            int(info["rpycPort"]),
            bytes.fromhex(info["secret"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        return ServerConnection(host, port, secret, rpyc_timeout)
    except (ConnectionError, OSError):
        return None  # a stale file of a server that is gone


class ServerConnection:
    """Connections (one per calling thread) to one project server's RPyC bridge."""

    def __init__(self, host: str, port: int, secret: bytes, rpyc_timeout: float = 120.0) -> None:
        self.host, self.port = host, port
        self._secret = secret
        self.rpyc_timeout = float(rpyc_timeout)
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        described = decode(bytes(self._conn().root.describe()))
        self._interfaces = {item["name"]: item for item in described}

    def _open(self) -> Any:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        try:
            sock.sendall(HANDSHAKE + self._secret)
            reply = sock.recv(len(ACCEPTED))
            if reply != ACCEPTED:
                raise AuthenticationError(
                    "the project server refused this client's secret; it was restarted or "
                    "belongs to another user: reconnect with a fresh ClientInterface()"
                )
            sock.settimeout(None)
            set_nodelay(sock)
            conn = connect_channel(
                Channel(FastSocketStream(sock), compress=False),
                config=rpyc_config(self.rpyc_timeout),
            )
        except BaseException:
            sock.close()
            raise
        tune_connection(conn)
        return conn

    def _conn(self) -> Any:
        if self._closed:
            raise StateError("this ClientInterface was closed")
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        rpc_timeout: float | None = None,
        remote_timeout: float | None = None,
        method_wait: float = 0.0,
    ) -> Any:
        """Call ``interface.method`` on the server and return its result (by value)."""
        payload = encode([list(args), kwargs])
        if rpc_timeout is not None:
            wait = float(rpc_timeout)
            hop2: float | None = float(rpc_timeout)
        else:
            wait = max(self.rpyc_timeout, method_wait + DEADLINE_MARGIN)
            hop2 = (
                None
                if remote_timeout is None
                else max(remote_timeout, method_wait + DEADLINE_MARGIN)
            )
        conn = self._conn()
        try:
            pending = rpyc.async_(conn.root.call)(interface, method, payload, hop2)
            pending.set_expiry(wait)
            raw = pending.value
        except AsyncResultTimeout:
            # The server may still be working on it: this connection is busy; use a new one.
            self._local.conn = None
            self._discard(conn)
            raise CallTimeout(
                f"{interface}.{method}: no answer from the project server within {wait:g} s "
                "(pass rpc_timeout=SECONDS for longer calls)"
            ) from None
        except EOFError as exc:
            self._local.conn = None
            self._discard(conn)
            raise ServiceUnavailableError(
                f"{interface}.{method}: the connection to the project server was lost ({exc}); "
                "is rtcloud serve still running?"
            ) from None
        reply = decode(bytes(raw))
        if reply.get("ok"):
            return reply.get("value")
        raise message_to_exception(reply["error"])

    def interface(self, name: str) -> RemoteInterface:
        info = self._interfaces.get(name)
        if info is None:
            raise StateError(f"the project server does not serve {name}")
        return RemoteInterface(self, name, info["methods"], bool(info["remote"]))

    def is_remote(self, kind: str) -> bool:
        name = {"data": "DataInterface", "subject": "SubjectInterface"}[kind]
        return bool(self._interfaces.get(name, {}).get("remote"))

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        _hard_close(conn)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            _hard_close(conn)


def _hard_close(conn: Any) -> None:
    """Close an RPyC connection at once, even while the server still works on a call."""
    sock = getattr(getattr(getattr(conn, "_channel", None), "stream", None), "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        conn.close()
    except Exception:  # already broken: nothing left to close
        pass


class RemoteInterface:
    """A proxy with exactly the methods the server exposes for one interface."""

    def __init__(
        self, conn: ServerConnection, name: str, methods: dict[str, int | None], remote: bool
    ) -> None:
        self._conn = conn
        self._name = name
        self._remote = remote
        self._rpc_timeout: float | None = None
        self._methods = dict(methods)
        for method, timeout_index in self._methods.items():
            setattr(self, method, self._make_method(method, timeout_index))

    def _make_method(self, method: str, timeout_index: int | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            rpc_timeout = kwargs.pop("rpc_timeout", None)
            wait: Any = kwargs.get("timeout")
            if wait is None and timeout_index is not None and len(args) > timeout_index:
                wait = args[timeout_index]
            method_wait = float(wait) if isinstance(wait, (int, float)) and wait > 0 else 0.0
            return self._conn.call(
                self._name,
                method,
                args,
                kwargs,
                rpc_timeout=rpc_timeout,
                remote_timeout=self._rpc_timeout,
                method_wait=method_wait,
            )

        call.__name__ = method
        call.__qualname__ = f"{self._name}.{method}"
        return call

    def isRunningRemote(self) -> bool:
        """True when the calls go on to a remote service."""
        return self._remote

    def isUsingProjectServer(self) -> bool:
        """True: this interface lives in the project server."""
        return True

    def setRPCTimeout(self, timeout: float) -> None:
        """Default timeout (seconds) of this interface's calls to its remote service."""
        self._rpc_timeout = float(timeout)

    def __repr__(self) -> str:
        where = "remote service" if self._remote else "project server"
        return f"<{self._name} via {where}>"
