"""The server side of the script-to-server hop: an RPyC service on 127.0.0.1.

A client must first send the server's secret (``RTCLOUD1`` + 32 bytes) on the raw socket;
anything else closes the connection before RPyC starts. The service then exposes exactly two
methods, ``describe`` and ``call``; arguments and results cross as msgpack bytes made by
:mod:`rtcloud.rpc.codec` (bytes stay binary; no pickle, no proxies, no attribute access), and
an error crosses as its type name, message and traceback, re-raised by the client as its own
type when that type is on the allow-list.

``call`` answers ``(status, data)``: :data:`REPLY_VALUE` with the encoded value,
:data:`REPLY_TICKET` with the ticket of a large value parked on the side channel
(:mod:`rtcloud.transport.rpyc_blobs`), or :data:`REPLY_ERROR` with the encoded error record.
A reply of a remote service is forwarded still encoded, never decoded in the server; a
large one is parked while it still arrives (a
:class:`~rtcloud.transport.streamed.StreamedValue`), and the side channel sends it on as it
comes.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import rpyc
from rpyc.utils.authenticators import AuthenticationError as RpycAuthenticationError
from rpyc.utils.server import ThreadedServer

from rtcloud.errors import ProtocolError
from rtcloud.rpc.codec import Encoded, decode, encode
from rtcloud.rpc.messages import error_to_message
from rtcloud.server.hub import Hub
from rtcloud.transport.rpyc_blobs import BLOB_THRESHOLD, BlobServer, BlobStore
from rtcloud.transport.rpyc_stream import (
    presents_secret,
    recv_exact,
    set_nodelay,
    tune_connection,
)

__all__ = [
    "HANDSHAKE",
    "REPLY_ERROR",
    "REPLY_TICKET",
    "REPLY_VALUE",
    "SECRET_BYTES",
    "RpycBridge",
    "rpyc_config",
]

logger = logging.getLogger(__name__)

HANDSHAKE = b"RTCLOUD1"
SECRET_BYTES = 32
ACCEPTED = b"OKAY"
REFUSED = b"DENY"
REPLY_VALUE, REPLY_TICKET, REPLY_ERROR = 0, 1, 2


def rpyc_config(timeout: float = 120.0) -> dict[str, Any]:
    """RPyC settings for both ends: nothing but the exposed methods, no pickle."""
    return {
        "allow_public_attrs": False,
        "allow_all_attrs": False,
        "allow_pickle": False,
        "allow_getattr": True,
        "allow_setattr": False,
        "allow_delattr": False,
        "import_custom_exceptions": False,
        "instantiate_custom_exceptions": False,
        "instantiate_oldstyle_exceptions": False,
        "include_local_traceback": False,
        "sync_request_timeout": timeout,
    }


class _BridgeService(rpyc.Service):  # type: ignore[misc]
    def __init__(self, hub: Hub, store: BlobStore, blob_port: int) -> None:
        super().__init__()
        self._hub = hub
        self._store = store
        self._blob_port = blob_port

    def on_connect(self, conn: Any) -> None:
        tune_connection(conn)

    def exposed_describe(self) -> bytes:
        return encode({"interfaces": self._hub.describe(), "blobPort": self._blob_port})

    def exposed_call(
        self,
        interface: str,
        method: str,
        payload: bytes,
        timeout: float | None,
        ticket: bytes | None = None,
    ) -> tuple[int, bytes]:
        try:
            if ticket is not None:
                parked = self._store.take(bytes(ticket))
                if parked is None:
                    raise ProtocolError(
                        f"{interface}.{method}: the arguments sent on the side channel were "
                        "not found (expired?); call again"
                    )
                args, kwargs = parked.decode()
            else:
                args, kwargs = decode(payload)
            value = self._hub.call(
                str(interface), str(method), tuple(args), dict(kwargs), timeout, raw=True
            )
            reply = Encoded.of(value)
            if reply.nbytes >= BLOB_THRESHOLD:
                return REPLY_TICKET, self._store.put(reply)
            return REPLY_VALUE, encode(reply)
        except Exception as exc:  # every error goes back to the script, typed
            if not isinstance(exc, (ValueError, LookupError, OSError, TimeoutError)):
                logger.debug("call %s.%s failed", interface, method, exc_info=True)
            return REPLY_ERROR, encode(error_to_message(exc))


class RpycBridge:
    """Serves the hub to experiment scripts over RPyC on 127.0.0.1 (port 0 = any free port)."""

    def __init__(self, hub: Hub, secret: bytes, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"the RPyC secret must be {SECRET_BYTES} bytes")
        self._secret = secret
        self.blobs = BlobServer(BlobStore(), secret, host=host)
        self._server = ThreadedServer(
            _BridgeService(hub, self.blobs.store, self.blobs.port),
            hostname=host,
            port=port,
            authenticator=self._authenticate,
            protocol_config=rpyc_config(),
            logger=logging.getLogger("rtcloud.rpyc"),
        )
        self.host: str = self._server.host
        self.port: int = self._server.port
        self._thread: threading.Thread | None = None

    def _authenticate(self, sock: socket.socket) -> tuple[socket.socket, None]:
        sock.settimeout(5.0)
        try:
            hello = recv_exact(sock, len(HANDSHAKE) + SECRET_BYTES)
        except OSError as exc:
            sock.close()
            raise RpycAuthenticationError(f"handshake failed: {exc}") from exc
        ok = presents_secret(hello, HANDSHAKE, self._secret)
        try:
            sock.sendall(ACCEPTED if ok else REFUSED)
        except OSError as exc:
            raise RpycAuthenticationError(f"handshake failed: {exc}") from exc
        if not ok:
            logger.warning("refused an RPyC client without this server's secret")
            sock.close()  # rpyc does not close refused sockets itself
            raise RpycAuthenticationError("wrong secret")
        sock.settimeout(None)
        set_nodelay(sock)
        return sock, None

    def start(self) -> None:
        self.blobs.start()
        self._thread = threading.Thread(
            target=self._server.start, name="rtcloud-rpyc", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.close()
        self.blobs.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
