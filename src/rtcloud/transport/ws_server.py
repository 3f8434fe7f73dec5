"""The server end of a remote service's WebSocket (``/ws/service/data``, ``/ws/service/subject``).

A :class:`ServiceChannel` drives one :class:`~rtcloud.rpc.protocol.RpcConnection` per
connected service inside the server's event loop, and offers :meth:`ServiceChannel.call` to
other threads (the RPyC bridge): the call is queued in the loop, its frames are sent as the
socket takes them (large ones in chunks that interleave), and the calling thread waits for
the result up to its deadline. When the service disconnects every pending call fails at
once with :class:`~rtcloud.errors.ServiceUnavailableError`; when a service connects again,
the set-up calls recorded with :meth:`ServiceChannel.remember` (watches and streams) are
replayed before any other call goes through, so a run continues.

A channel can also answer calls *from* its service, when given a
:class:`~rtcloud.rpc.dispatch.Dispatcher` of the few methods a service may call (a subject
service reporting the participant's responses); any other call is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from rtcloud.errors import CallTimeout, ProtocolError, ServiceUnavailableError
from rtcloud.rpc.dispatch import Dispatcher
from rtcloud.rpc.protocol import (
    CallFailed,
    CallResult,
    IncomingCall,
    RpcConnection,
)
from rtcloud.transport.budget import SERVER_BUDGET

__all__ = ["ServiceChannel"]

logger = logging.getLogger(__name__)

#: Calls whose effect a restarted service must be given again: (interface, method).
SETUP_CALLS = {("DataInterface", "initWatch"), ("DataInterface", "initScannerStream")}


class ServiceChannel:
    """One remote service role (``data`` or ``subject``) as seen by the server."""

    def __init__(
        self,
        role: str,
        on_change: Callable[[], None] | None = None,
        *,
        incoming: Dispatcher | None = None,
    ) -> None:
        self.role = role
        self._on_change = on_change
        self._incoming = incoming
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: RpcConnection | None = None
        self._ws: WebSocket | None = None
        self._wake: asyncio.Event | None = None
        self._futures: dict[int, concurrent.futures.Future[Any]] = {}
        self._ready = threading.Event()
        self._setup: list[tuple[str, str, tuple[Any, ...], dict[str, Any], int | None]] = []
        self._stream_ids: dict[int, int] = {}  # stream id the script holds -> service's id
        self._next_index: dict[int, int] = {}  # stream id the script holds -> next volume
        self._lock = threading.Lock()
        self.peer = ""

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # ------------------------------------------------------------ calls from other threads

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> Any:
        """Call the service and wait (in this thread) for the result, up to ``timeout`` s.

        With ``raw`` the result stays encoded (set-up calls, whose results the channel
        needs, are always decoded).
        """
        kwargs = dict(kwargs)
        args, held = self._map_stream_args(interface, method, args, kwargs)
        raw = raw and (interface, method) not in SETUP_CALLS
        future = self.call_async(interface, method, args, kwargs, timeout, raw)
        value = self.wait(future, timeout, f"{interface}.{method}")
        if (interface, method) in SETUP_CALLS:
            self.remember(interface, method, args, kwargs, value)
        elif interface == "DataInterface" and method == "getImageData" and held is not None:
            with self._lock:
                self._next_index[held] = int(args[1]) + 1
        return value

    def call_async(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> concurrent.futures.Future[Any]:
        """Send a call now; its result (or error) arrives in the returned future.

        Wait for it with :meth:`wait`, which also tells the service when the time is up.
        """
        loop = self._loop
        if loop is None or not self.connected:
            raise ServiceUnavailableError(f"the {self.role} service is not connected")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon_threadsafe(
            self._start, future, interface, method, args, kwargs, timeout, raw
        )
        return future

    def wait(self, future: concurrent.futures.Future[Any], timeout: float, what: str) -> Any:
        """The result of a call made with :meth:`call_async`, waiting up to ``timeout`` s."""
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the service's own TimeoutError (e.g. a file wait), not ours
                raise
            call_id = getattr(future, "call_id", None)
            if call_id is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._expire, call_id, timeout)
            raise CallTimeout(
                f"{what}: the {self.role} service did not answer within {timeout:.3g} s "
                "(pass rpc_timeout=SECONDS for longer calls)"
            ) from None

    def remember(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        value: Any,
    ) -> None:
        """Record a set-up call so that a reconnecting service gets it again."""
        with self._lock:
            if method == "initWatch":
                self._setup = [s for s in self._setup if s[1] != "initWatch"]
            held = value if method == "initScannerStream" and isinstance(value, int) else None
            self._setup.append((interface, method, args, kwargs, held))
            if held is not None:
                self._stream_ids[held] = held
                self._next_index[held] = 0

    def _map_stream_args(
        self, interface: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], int | None]:
        """getImageData: the service's current stream id, and an explicit volume index.

        The server keeps each stream's next volume itself, so a restarted service (whose
        new stream would start again at volume 0) continues where the script is.
        """
        if interface != "DataInterface" or method != "getImageData" or not args:
            return args, None
        held = args[0]
        with self._lock:
            current = self._stream_ids.get(held)
            next_index = self._next_index.get(held, 0)
        if current is None:
            return args, None
        rest = list(args[1:])
        if "imageIndex" in kwargs:
            if kwargs["imageIndex"] is None:
                kwargs["imageIndex"] = next_index
            index = kwargs.pop("imageIndex")
            rest.insert(0, index)
        elif not rest or rest[0] is None:
            if rest:
                rest[0] = next_index
            else:
                rest.append(next_index)
        return (current, *rest), held

    # ------------------------------------------------------------ inside the loop

    def _start(
        self,
        future: concurrent.futures.Future[Any],
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> None:
        conn = self._conn
        if conn is None or not self.connected:
            future.set_exception(
                ServiceUnavailableError(f"the {self.role} service is not connected")
            )
            return
        try:
            call_id = conn.call(
                interface, method, args, kwargs, deadline_s=timeout, raw_result=raw
            )
        except Exception as exc:  # bad arguments: report to the caller
            future.set_exception(exc)
            return
        future.call_id = call_id  # type: ignore[attr-defined]
        self._futures[call_id] = future
        self._wake_sender()

    def _expire(self, call_id: int, waited: float) -> None:
        if self._conn is not None:
            self._conn.expire(call_id, waited)
            self._handle_events(self._conn)
            self._wake_sender()

    def _wake_sender(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _handle_events(self, conn: RpcConnection) -> None:
        for event in conn.events_received():
            if isinstance(event, CallResult):
                future = self._futures.pop(event.call_id, None)
                if future is not None and not future.done():
                    future.set_result(event.value)
            elif isinstance(event, CallFailed):
                future = self._futures.pop(event.call_id, None)
                if future is not None and not future.done():
                    future.set_exception(event.exception)
            elif isinstance(event, IncomingCall):
                if self._incoming is None:
                    conn.send_error(
                        event.call_id,
                        ServiceUnavailableError("the server does not take calls from services"),
                    )
                else:  # only quick, non-blocking methods are registered here
                    conn.reply(self._incoming.invoke(event))

    async def _sender(self, ws: WebSocket, conn: RpcConnection, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            while True:
                frame = conn.next_frame()
                if frame is None:
                    break
                await ws.send_bytes(frame)

    async def _replay_setup(self, conn: RpcConnection) -> None:
        """Give a (re)connected service the watches and streams the script set up."""
        with self._lock:
            setup = list(self._setup)
        for interface, method, args, kwargs, held in setup:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            call_id = conn.call(interface, method, args, kwargs, deadline_s=30.0)
            self._futures[call_id] = future
            self._wake_sender()
            try:
                value = await asyncio.wait_for(asyncio.wrap_future(future), 30.0)
            except Exception as exc:  # the service refuses or fails: say so, keep going
                logger.warning(
                    "could not restore %s.%s on the %s service: %s",
                    interface,
                    method,
                    self.role,
                    exc,
                )
                continue
            if held is not None and isinstance(value, int):
                with self._lock:
                    self._stream_ids[held] = value
            logger.info(
                "restored %s.%s on the reconnected %s service", interface, method, self.role
            )

    async def serve(self, ws: WebSocket, peer: str) -> None:
        """Run one service connection until it closes (the newest connection wins)."""
        await ws.accept()
        old = self._ws
        if old is not None:
            logger.warning("a new %s service connected; closing the previous one", self.role)
            with contextlib.suppress(Exception):
                await old.close(code=1012)
        conn = RpcConnection(f"server/{self.role}", budget=SERVER_BUDGET)
        wake = asyncio.Event()
        self._conn, self._ws, self._wake, self.peer = conn, ws, wake, peer
        sender = asyncio.create_task(self._sender(ws, conn, wake))
        wake.set()
        receiver = asyncio.create_task(self._receive(ws, conn))
        try:
            await self._replay_setup(conn)
            self._ready.set()
            logger.info("%s service connected (%s)", self.role, peer)
            if self._on_change:
                self._on_change()
            await receiver
        finally:
            receiver.cancel()
            sender.cancel()
            if self._conn is conn:
                self._ready.clear()
                self._conn = None
                self._ws = None
                self._wake = None
            conn.fail_all(f"the {self.role} service disconnected")
            self._handle_events(conn)
            logger.warning("%s service disconnected (%s)", self.role, peer)
            if self._on_change:
                self._on_change()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _receive(self, ws: WebSocket, conn: RpcConnection) -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    raise ProtocolError("the service sent a text frame; frames must be binary")
                conn.receive_frame(data)
                self._handle_events(conn)
                self._wake_sender()
        except WebSocketDisconnect:
            return
        except ProtocolError as exc:
            logger.warning("%s service broke the protocol: %s", self.role, exc)
            with contextlib.suppress(Exception):
                await ws.close(code=1002)
