"""The server end of a remote service's WebSocket (``/ws/service/data``, ``/ws/service/subject``).

A :class:`ServiceChannel` drives one :class:`~rtcloud.rpc.protocol.RpcConnection` per
connected service inside the server's event loop, and offers :meth:`ServiceChannel.call` to
other threads (the RPyC bridge): the call is queued in the loop, its frames are sent as the
socket takes them (large ones in chunks that interleave), and the calling thread waits for
the result up to its deadline. When the service disconnects every pending call fails at
once with :class:`~rtcloud.errors.ServiceUnavailableError`.

The channel carries calls and knows nothing of what they mean. It says when a service
connects (``on_change``) and numbers its connections (:attr:`ServiceChannel.generation`):
a caller that set something up on the service (a stream, say) passes the generation it set
it up on, and a call for an older generation fails with :class:`Reconnected` instead of
reaching a service that never heard of it (see :mod:`rtcloud.server.data_streams`).

A raw call (the RPyC bridge passing a result on to a script) is made with
``stream_result``: once its reply's payload has arrived, the caller gets a
:class:`~rtcloud.transport.streamed.StreamedValue` that this channel keeps feeding with the
reply's chunks as they come, then ends (or fails, when the service goes).

A channel can also answer calls *from* its service, when given a
:class:`~rtcloud.rpc.dispatch.Dispatcher` of the few methods a service may call (a subject
service reporting the participant's responses); any other call is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from rtcloud.errors import CallTimeout, ProtocolError, ServiceUnavailableError
from rtcloud.rpc.dispatch import Dispatcher
from rtcloud.rpc.protocol import (
    CallFailed,
    CallResult,
    IncomingCall,
    ResultBegun,
    ResultPiece,
    RpcConnection,
)
from rtcloud.transport.budget import SERVER_BUDGET
from rtcloud.transport.streamed import StreamedValue
from rtcloud.transport.ws_socket import REPLACED

__all__ = ["Reconnected", "ServiceChannel"]

logger = logging.getLogger(__name__)


class Reconnected(ServiceUnavailableError):
    """The service connected anew since the generation a call was meant for."""


class _CallFuture(concurrent.futures.Future[Any]):
    """A call's outcome, with what the loop needs to report on it and to end it in time."""

    def __init__(self, what: str, deadline: float) -> None:
        super().__init__()
        self.what = what  # "Interface.method", for messages
        self.deadline = deadline  # time.monotonic() after which nobody waits for it
        self.sent: tuple[_Link, int] | None = None  # its link and call id, once sent


class _Link:
    """One accepted connection of a service: its socket, protocol state and pending calls."""

    def __init__(self, ws: WebSocket, conn: RpcConnection, generation: int, peer: str) -> None:
        self.ws = ws
        self.conn = conn
        self.generation = generation
        self.peer = peer
        self.wake = asyncio.Event()
        self.futures: dict[int, _CallFuture] = {}
        #: results handed on while they arrive, by call id (see rtcloud.transport.streamed)
        self.streamed: dict[int, StreamedValue] = {}
        self.open = True


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
        self._link: _Link | None = None
        self._generations = 0

    @property
    def connected(self) -> bool:
        """True while a service is connected and can take calls."""
        link = self._link
        return link is not None and link.open

    @property
    def generation(self) -> int:
        """The number of the current connection (1 for the first; 0 before any)."""
        link = self._link
        return link.generation if link is not None else 0

    @property
    def connections(self) -> int:
        """How many connections the service has made so far (0: it never connected)."""
        return self._generations

    @property
    def peer(self) -> str:
        """Who the connected service is (``user@host``), or ""."""
        link = self._link
        return link.peer if link is not None else ""

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
        *,
        generation: int | None = None,
    ) -> Any:
        """Call the service and wait (in this thread) for the result, up to ``timeout`` s.

        With ``raw`` the result may stay encoded. With ``generation``, only that
        connection may take the call (else :class:`Reconnected`).
        """
        future = self.call_async(interface, method, args, kwargs, timeout, raw, generation)
        return self.wait(future, timeout, f"{interface}.{method}")

    def call_async(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
        generation: int | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Send a call now, on the current connection; its outcome arrives in the future.

        Calls made one after another from one thread reach the service in that order.
        Wait for one with :meth:`wait`, which also tells the service when the time is up.
        """
        loop, link = self._loop, self._link
        if loop is None or link is None or not link.open:
            raise ServiceUnavailableError(f"the {self.role} service is not connected")
        if generation is not None and link.generation != generation:
            raise Reconnected(f"the {self.role} service connected anew")
        future = _CallFuture(f"{interface}.{method}", time.monotonic() + timeout)
        loop.call_soon_threadsafe(
            self._start, link, future, interface, method, args, kwargs, timeout, raw
        )
        return future

    def wait(self, future: concurrent.futures.Future[Any], timeout: float, what: str) -> Any:
        """The result of a call made with :meth:`call_async`, waiting up to ``timeout`` s."""
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the service's own TimeoutError (e.g. a file wait), not ours
                raise
            sent = future.sent if isinstance(future, _CallFuture) else None
            if sent is not None and self._loop is not None:
                link, call_id = sent
                self._loop.call_soon_threadsafe(self._expire, link, call_id, timeout)
            raise CallTimeout(
                f"{what}: the {self.role} service did not answer within {timeout:.3g} s "
                "(pass rpc_timeout=SECONDS for longer calls)"
            ) from None

    # ------------------------------------------------------------ inside the loop

    def _start(
        self,
        link: _Link,
        future: _CallFuture,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool,
    ) -> None:
        if not link.open:
            future.set_exception(ServiceUnavailableError(f"the {self.role} service disconnected"))
            return
        try:
            call_id = link.conn.call(
                interface,
                method,
                args,
                kwargs,
                deadline_s=timeout,
                raw_result=raw,
                stream_result=raw,  # a raw result is only passed on: pass it on as it comes
            )
        except Exception as exc:  # bad arguments: report to the caller
            future.set_exception(exc)
            return
        future.sent = (link, call_id)
        link.futures[call_id] = future
        link.wake.set()

    def _expire(self, link: _Link, call_id: int, waited: float) -> None:
        if link.open:
            link.conn.expire(call_id, waited)
            self._handle_events(link)
            link.wake.set()

    def _handle_events(self, link: _Link) -> None:
        conn = link.conn
        for event in conn.events_received():
            if isinstance(event, ResultPiece):
                streamed = link.streamed.get(event.call_id)
                if streamed is not None:
                    streamed.add(event.data)
            elif isinstance(event, ResultBegun):
                future = link.futures.pop(event.call_id, None)
                if future is not None and not future.done():
                    streamed = StreamedValue(
                        event.payload, event.lengths, future.deadline, future.what
                    )
                    link.streamed[event.call_id] = streamed
                    future.set_result(streamed)
            elif isinstance(event, CallResult):
                streamed = link.streamed.pop(event.call_id, None)
                if streamed is not None:
                    streamed.finish()
                future = link.futures.pop(event.call_id, None)
                if future is not None and not future.done():
                    future.set_result(event.value)
            elif isinstance(event, CallFailed):
                streamed = link.streamed.pop(event.call_id, None)
                if streamed is not None:
                    streamed.fail(event.exception)
                future = link.futures.pop(event.call_id, None)
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

    async def _sender(self, link: _Link) -> None:
        while link.open:
            await link.wake.wait()
            link.wake.clear()
            while link.open:
                frame = link.conn.next_frame()
                if frame is None:
                    break
                await link.ws.send_bytes(frame)

    async def serve(self, ws: WebSocket, peer: str) -> None:
        """Run one service connection until it closes (the newest connection wins)."""
        await ws.accept()
        old = self._link
        self._generations += 1
        # results pass through to scripts as they came (the side channel sends the pieces)
        conn = RpcConnection(f"server/{self.role}", budget=SERVER_BUDGET, assemble=False)
        link = _Link(ws, conn, self._generations, peer)
        self._link = link
        if old is not None:
            logger.warning(
                "a new %s service connected (%s); closing the previous one (%s), which stops",
                self.role,
                peer,
                old.peer,
            )
            self._close_link(old)
            with contextlib.suppress(Exception):  # it stops rather than push the new one out
                await old.ws.close(code=REPLACED, reason=f"another {self.role} service took over")
        sender = asyncio.create_task(self._sender(link))
        link.wake.set()
        logger.info("%s service connected (%s)", self.role, peer)
        if self._on_change:
            self._on_change()
        try:
            await self._receive(link)
        finally:
            if self._link is link:
                self._link = None
            self._close_link(link)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            logger.warning("%s service disconnected (%s)", self.role, peer)
            if self._on_change:
                self._on_change()

    def _close_link(self, link: _Link) -> None:
        """Fail every call pending on a link that is gone (or pushed out)."""
        if not link.open:
            return
        link.open = False
        link.wake.set()
        link.conn.fail_all(f"the {self.role} service disconnected")
        self._handle_events(link)

    async def _receive(self, link: _Link) -> None:
        ws, conn = link.ws, link.conn
        try:
            while link.open:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    raise ProtocolError("the service sent a text frame; frames must be binary")
                conn.receive_frame(data)
                self._handle_events(link)
                link.wake.set()
        except WebSocketDisconnect:
            return
        except ProtocolError as exc:
            logger.warning("%s service broke the protocol: %s", self.role, exc)
            with contextlib.suppress(Exception):
                await ws.close(code=1002)
        except RuntimeError as exc:  # the socket was closed under us (pushed out)
            logger.debug("%s service socket closed: %s", self.role, exc)
