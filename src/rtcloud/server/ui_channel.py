"""The live channel between the server and every open experimenter page (``/ws/ui``).

Messages to pages may be sent from any thread (RPyC threads, the script runner); each page
has its own queue and sender task, so a slow browser never holds up the others or the
experiment. A page whose queue overflows is disconnected (it reconnects and resyncs).
Incoming commands are handed to a handler the server provides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["UIChannel"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]
QUEUE_LIMIT = 20000


class UIChannel:
    """Fan-out of JSON messages to every connected page, from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[WebSocket, asyncio.Queue[str | None]] = {}
        self._lock = threading.Lock()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def connections(self) -> int:
        return len(self._queues)

    def broadcast(self, message: Message) -> None:
        """Send ``message`` to every page; callable from any thread, never blocks."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        text = json.dumps(message, allow_nan=False, default=str)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(text)
        else:
            with contextlib.suppress(RuntimeError):  # loop closed while shutting down
                loop.call_soon_threadsafe(self._enqueue, text)

    def _enqueue(self, text: str) -> None:
        for ws, queue in list(self._queues.items()):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                logger.warning("a page is not keeping up; disconnecting it")
                self._queues.pop(ws, None)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    async def send_to(self, ws: WebSocket, message: Message) -> None:
        queue = self._queues.get(ws)
        if queue is not None:
            await queue.put(json.dumps(message, allow_nan=False, default=str))

    async def serve(
        self, ws: WebSocket, handle: Callable[[WebSocket, Message], Awaitable[None]]
    ) -> None:
        """Run one page's connection until it closes."""
        await ws.accept()
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queues[ws] = queue
        sender = asyncio.create_task(self._sender(ws, queue))
        try:
            while True:
                text = await ws.receive_text()
                try:
                    message = json.loads(text)
                    if not isinstance(message, dict) or not isinstance(message.get("cmd"), str):
                        raise ValueError("a message must be a JSON object with a 'cmd' string")
                except ValueError as exc:
                    await self.send_to(ws, {"cmd": "userError", "error": f"bad message: {exc}"})
                    continue
                await handle(ws, message)
        except WebSocketDisconnect:
            pass
        finally:
            self._queues.pop(ws, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _sender(self, ws: WebSocket, queue: asyncio.Queue[str | None]) -> None:
        while True:
            text = await queue.get()
            if text is None:
                await ws.close(code=1013)
                return
            await ws.send_text(text)
