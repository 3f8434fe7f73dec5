"""The script side of the script-to-server hop: RPyC connections and interface proxies.

:func:`connect_from_info_file` reads the connection file a running server wrote (address and
secret), and returns a :class:`ServerConnection` whose :meth:`~ServerConnection.interface`
gives one proxy per interface. A proxy has exactly the methods the server exposes; each call
encodes its arguments with :mod:`rtcloud.rpc.codec`, waits for the result with a deadline
and re-raises a remote error as its own type (``ValidationError``, ``TimeoutError``,
``FileNotFoundError`` ...). Every calling thread gets its own RPyC connection, so a thread
waiting for a volume never blocks another sending feedback. Large arguments and results
travel on the side channel of :mod:`rtcloud.transport.rpyc_blobs`, also one connection per
thread. Methods exposed as posted (``webInterface.sendQuality``) are checked in the script
and sent by a background thread (:mod:`rtcloud.transport.posted`).
"""

from __future__ import annotations

import functools
import inspect
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
from rtcloud.rpc.codec import Encoded, decode, encode
from rtcloud.rpc.dispatch import POSTED_MARK
from rtcloud.rpc.messages import message_to_exception
from rtcloud.server.hub import DEADLINE_MARGIN
from rtcloud.transport.posted import Finish, PostedCalls
from rtcloud.transport.rpyc_blobs import BLOB_THRESHOLD, BlobClient
from rtcloud.transport.rpyc_bridge import (
    ACCEPTED,
    HANDSHAKE,
    REPLY_ERROR,
    REPLY_TICKET,
    REPLY_VALUE,
    rpyc_config,
)
from rtcloud.transport.rpyc_stream import FastSocketStream, set_nodelay, tune_connection

__all__ = [
    "HOP1_GRACE",
    "RemoteInterface",
    "ServerConnection",
    "connect_from_info",
    "connect_from_info_file",
    "proxy_class",
]

#: Seconds the script waits beyond ``rpc_timeout``, for the server's answer to travel back.
HOP1_GRACE = 0.25
#: Deadline of one posted call's delivery, seconds.
POSTED_TIMEOUT = 10.0
#: Seconds closing a connection waits for posted calls still queued.
POSTED_FLUSH = 5.0


def connect_from_info_file(path: Path, rpyc_timeout: float) -> ServerConnection | None:
    """Connect to the server described by ``path``; None when that server is not running."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return connect_from_info(info, rpyc_timeout) if isinstance(info, dict) else None


def connect_from_info(
    info: dict[str, Any], rpyc_timeout: float, *, refused_is_gone: bool = False
) -> ServerConnection | None:
    """Connect to the server ``info`` describes (host, rpycPort, secret); None when it fails.

    With ``refused_is_gone``, a refused connection (nobody listens on that port) raises
    ConnectionRefusedError instead, so the caller can forget the server.
    """
    try:
        host, port, secret = (
            str(info["host"]),
            int(info["rpycPort"]),
            bytes.fromhex(info["secret"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    try:
        conn = ServerConnection(host, port, secret, rpyc_timeout)
    except ConnectionRefusedError:
        if refused_is_gone:
            raise
        return None
    except (ConnectionError, OSError):
        return None  # not (or no longer) that server
    conn.url = info.get("url") if isinstance(info.get("url"), str) else None
    conn.project = info.get("project") if isinstance(info.get("project"), str) else None
    return conn


class _ThreadLink:
    """One thread's RPyC connection, its bound ``call`` and its side-channel socket."""

    __slots__ = ("blobs", "call", "conn")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        # Bound once: looking ``call`` up on the remote root costs a round trip per call.
        self.call = rpyc.async_(conn.root.call)
        self.blobs: BlobClient | None = None


class ServerConnection:
    """Connections (one per calling thread) to one project server's RPyC bridge."""

    def __init__(self, host: str, port: int, secret: bytes, rpyc_timeout: float = 120.0) -> None:
        self.host, self.port = host, port
        #: The server's web address and project, as its connection file gives them.
        self.url: str | None = None
        self.project: str | None = None
        self._secret = secret
        self.rpyc_timeout = float(rpyc_timeout)
        self._local = threading.local()
        self._all: list[_ThreadLink] = []
        self._lock = threading.Lock()
        self._closed = False
        self._posted: PostedCalls | None = None
        described = decode(bytes(self._link().conn.root.describe()))
        self._blob_port = int(described["blobPort"])
        self._interfaces = {item["name"]: item for item in described["interfaces"]}

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

    def _link(self) -> _ThreadLink:
        if self._closed:
            raise StateError("this ClientInterface was closed")
        link: _ThreadLink | None = getattr(self._local, "link", None)
        if link is None or link.conn.closed:
            link = _ThreadLink(self._open())
            self._local.link = link
            with self._lock:
                self._all.append(link)
        return link

    def _blobs(self, link: _ThreadLink) -> BlobClient:
        if link.blobs is None:
            link.blobs = BlobClient(self.host, self._blob_port, self._secret)
        return link.blobs

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
        request = Encoded.of([list(args), kwargs])
        # The deadline: rpc_timeout; else the method's own wait plus a margin (or the
        # interface's setRPCTimeout if longer); else setRPCTimeout, or the server's default.
        # The server's own, more telling timeout error gets HOP1_GRACE to arrive first.
        hop2: float | None
        if rpc_timeout is not None:
            hop2 = float(rpc_timeout)
            wait = hop2 + HOP1_GRACE
        elif method_wait > 0:
            hop2 = max(remote_timeout or 0.0, method_wait + DEADLINE_MARGIN)
            wait = hop2 + HOP1_GRACE
        elif remote_timeout is not None:
            hop2 = float(remote_timeout)
            wait = max(self.rpyc_timeout, hop2 + HOP1_GRACE)
        else:
            hop2, wait = None, self.rpyc_timeout
        link = self._link()
        try:
            ticket: bytes | None = None
            if request.nbytes >= BLOB_THRESHOLD:
                blobs = self._blobs(link)
                blobs.set_timeout(wait)
                ticket, inline = blobs.upload(request), b""
            else:
                inline = encode(request)
            pending = link.call(interface, method, inline, hop2, ticket)
            pending.set_expiry(wait)
            status, data = pending.value
            if status == REPLY_TICKET:
                blobs = self._blobs(link)
                blobs.set_timeout(wait)
                try:
                    fetched = blobs.fetch(bytes(data))
                except ConnectionError as exc:
                    # the server passes a large result on while it arrives: it closes the
                    # side channel when the rest will not come
                    self._drop(link)
                    raise ServiceUnavailableError(
                        f"{interface}.{method}: the result stopped arriving before it was "
                        f"whole ({exc}): the remote service disconnected while sending it, "
                        "its time ran out, or the project server stopped; call again"
                    ) from None
                return fetched.decode()
        except (AsyncResultTimeout, TimeoutError):
            # The server may still be working on it: this connection is busy; use a new one.
            self._drop(link)
            raise CallTimeout(
                f"{interface}.{method}: no answer from the project server within {wait:g} s "
                "(pass rpc_timeout=SECONDS for longer calls)"
            ) from None
        except ServiceUnavailableError:
            raise  # ours, saying what happened (an OSError too: not the server's link)
        except (EOFError, OSError) as exc:
            self._drop(link)
            raise ServiceUnavailableError(
                f"{interface}.{method}: the connection to the project server was lost ({exc}); "
                "is rtcloud serve still running?"
            ) from None
        if status == REPLY_VALUE:
            return decode(data)
        if status == REPLY_ERROR:
            raise message_to_exception(decode(data))
        raise ServiceUnavailableError(f"{interface}.{method}: unknown reply {status!r}")

    def post(self, interface: str, method: str, finish: Finish) -> None:
        """Queue a checked call of a posted method (see :mod:`rtcloud.transport.posted`)."""
        with self._lock:
            if self._posted is None:
                self._posted = PostedCalls(
                    lambda i, m, a, k: self.call(i, m, a, k, rpc_timeout=POSTED_TIMEOUT)
                )
            posted = self._posted
        posted.post(interface, method, finish)

    def flush_posted(self, timeout: float = POSTED_FLUSH) -> bool:
        """Wait until the posted calls were sent; False after ``timeout`` seconds."""
        posted = self._posted
        return True if posted is None else posted.flush(timeout)

    def interface(self, name: str, contract: type | None = None) -> RemoteInterface:
        """The proxy of interface ``name``; with ``contract`` (the in-process class), its
        methods carry that class's signatures and docstrings, for ``help()`` and editors."""
        info = self._interfaces.get(name)
        if info is None:
            raise StateError(f"the project server does not serve {name}")
        methods: dict[str, int | None] = info["methods"]
        cls = RemoteInterface if contract is None else proxy_class(contract, methods)
        return cls(self, name, methods, bool(info["remote"]))

    def is_remote(self, kind: str) -> bool:
        name = {"data": "DataInterface", "subject": "SubjectInterface"}[kind]
        return bool(self._interfaces.get(name, {}).get("remote"))

    def _drop(self, link: _ThreadLink) -> None:
        """Forget this thread's link (busy or broken) and close it at once."""
        if getattr(self._local, "link", None) is link:
            self._local.link = None
        with self._lock:
            if link in self._all:
                self._all.remove(link)
        _hard_close(link)

    def close(self) -> None:
        if self._posted is not None and not self._closed:
            self._posted.close(POSTED_FLUSH)  # what the script posted last still arrives
        self._closed = True
        with self._lock:
            links, self._all = self._all, []
        for link in links:
            _hard_close(link)


def _hard_close(link: _ThreadLink) -> None:
    """Close a link at once, even while the server still works on a call."""
    if link.blobs is not None:
        link.blobs.close()
    conn = link.conn
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
    """A proxy with exactly the methods the server exposes for one interface.

    Made through :meth:`ServerConnection.interface`; given the interface's in-process class,
    the proxy is an instance of a subclass (see :func:`proxy_class`) whose methods have that
    class's names, signatures and docstrings, so ``help()`` reads the same in every mode.
    """

    def __init__(
        self, conn: ServerConnection, name: str, methods: dict[str, int | None], remote: bool
    ) -> None:
        self._conn = conn
        self._name = name
        self._remote = remote
        #: RT-Cloud's attribute: True when the calls go on to a remote service.
        self.isRemote = remote
        self._rpc_timeout: float | None = None
        self._methods = dict(methods)
        for method, timeout_index in self._methods.items():
            if not callable(getattr(type(self), method, None)):  # no method from a contract
                setattr(self, method, self._make_method(method, timeout_index))

    def _make_method(self, method: str, timeout_index: int | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(method, timeout_index, args, kwargs)

        call.__name__ = method
        call.__qualname__ = f"{self._name}.{method}"
        return call

    def _call(
        self,
        method: str,
        timeout_index: int | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
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


_RPC_TIMEOUT = inspect.Parameter(
    "rpc_timeout", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="float | None"
)
_PROXY_CLASSES: dict[tuple[type, tuple[tuple[str, int | None], ...]], type[RemoteInterface]] = {}
_PROXY_LOCK = threading.Lock()


def _remote_method(
    method: str, timeout_index: int | None, local: Callable[..., Any]
) -> Callable[..., Any]:
    """A proxy method that looks like ``local`` (name, docstring, signature) and calls out."""

    check = getattr(local, POSTED_MARK, None)
    if check is not None:

        def call(self: RemoteInterface, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("rpc_timeout", None)
            self._conn.post(self._name, method, check(*args, **kwargs))
            return None

    else:

        def call(self: RemoteInterface, *args: Any, **kwargs: Any) -> Any:
            return self._call(method, timeout_index, args, kwargs)

    functools.update_wrapper(call, local)  # inspect stops at the __signature__ set below
    try:
        signature = inspect.signature(local)
    except (TypeError, ValueError):
        return call
    params = list(signature.parameters.values())
    if "rpc_timeout" not in signature.parameters:
        at = next(
            (i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD),
            len(params),
        )
        params.insert(at, _RPC_TIMEOUT)
    call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return call


def proxy_class(contract: type, methods: dict[str, int | None]) -> type[RemoteInterface]:
    """A RemoteInterface subclass named after ``contract`` with its exposed ``methods``.

    Each method has the contract's docstring and signature (plus the keyword ``rpc_timeout``
    every call accepts), so ``help(ci.dataInterface.getImageData)`` shows what the method
    takes and does whether the interface is local or served through the project server.
    """
    key = (contract, tuple(sorted(methods.items())))
    with _PROXY_LOCK:
        cls = _PROXY_CLASSES.get(key)
        if cls is None:
            namespace: dict[str, Any] = {
                "__doc__": (
                    f"{contract.__doc__ or contract.__name__}\n\n"
                    "(This object forwards each call to the rtcloud project server.)"
                ),
                "__module__": __name__,
                "__qualname__": contract.__qualname__,
            }
            for method, timeout_index in methods.items():
                local = getattr(contract, method, None)
                if callable(local):
                    namespace[method] = _remote_method(method, timeout_index, local)
            cls = type(contract.__name__, (RemoteInterface,), namespace)
            _PROXY_CLASSES[key] = cls
        return cls
