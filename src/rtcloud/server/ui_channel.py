"""The live channel between the server and every open experimenter page (``/ws/ui``).

Messages to pages may be sent from any thread (RPyC threads, the script runner). A broadcast
only appends to a list: the event loop hands what piled up to the pages every
``FLUSH_INTERVAL`` seconds, in order, while a page is connected, so a script's
``plotDataPoint`` or log line never waits for the loop to wake up (and with no page open, a
broadcast is dropped at once: a page that connects gets the current state). Each page has its
own queue and sender task, so a slow browser never holds up the others or the experiment. A
page whose queue overflows is disconnected (it reconnects and resyncs). Incoming commands are
handed to a handler the server provides.
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
_JSON = json.JSONEncoder(allow_nan=False, default=str)  # one encoder, not one per message
#: Seconds between two deliveries of the broadcasts that piled up (a page shows them then).
FLUSH_INTERVAL = 0.01


class UIChannel:
    """Fan-out of JSON messages to every connected page, from any thread."""

    def __init__(self) -> None:
        self._queues: dict[WebSocket, asyncio.Queue[str | None]] = {}
        self._lock = threading.Lock()
        self._pending: list[str] = []  # broadcasts not yet handed to the pages' queues
        self._flusher: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        return len(self._queues)

    def broadcast(self, message: Message) -> None:
        """Send ``message`` to every page; callable from any thread, never blocks."""
        if not self._queues:
            return  # no page: nothing to deliver (a page gets the current state on connect)
        text = _JSON.encode(message)
        with self._lock:
            self._pending.append(text)

    def _flush(self) -> None:
        with self._lock:
            texts, self._pending = self._pending, []
        for text in texts:
            self._enqueue(text)

    async def _flush_while_pages(self) -> None:
        try:
            while self._queues:
                await asyncio.sleep(FLUSH_INTERVAL)
                self._flush()
        finally:
            self._flusher = None
            if not self._queues:
                with self._lock:
                    self._pending.clear()

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
            await queue.put(_JSON.encode(message))

    async def serve(
        self, ws: WebSocket, handle: Callable[[WebSocket, Message], Awaitable[None]]
    ) -> None:
        """Run one page's connection until it closes."""
        await ws.accept()
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queues[ws] = queue
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_while_pages())
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
