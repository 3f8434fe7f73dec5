"""Feedback pages in browsers (jsPsych, or rtcloud's own page): the ``/ws/feedback`` socket.

A page that shows feedback to the participant connects here after logging in (the session
cookie and the Origin check of :mod:`rtcloud.server.app` apply) and becomes a peer of the
:class:`~rtcloud.server.subject_relay.SubjectRelay`. Messages are JSON text frames, small
and easy to read in JavaScript without any library (``docs/feedback-page.md``):

server -> page::

    {"type": "hello", "message": "<current message>"}
    {"type": "result", "id": 7, "runId": 1, "trId": 3, "value": 0.42, "onsetTimeDelayMs": 500}
    {"type": "resultDict", "id": 8, "name": "n", "values": {...}, "onsetTimeDelayMs": 0}
    {"type": "message", "id": 9, "text": "Get ready"}

A result the server kept while the page was away (closed, reloading, its link down) comes
after the page connects again with ``"late": true``.

page -> server::

    {"type": "ack", "id": 7}                      (the result arrived; shown at its onset)
    {"type": "error", "id": 7, "error": "..."}    (the page could not take it)
    {"type": "response", "runId": 1, "trId": 3, "response": {"key": "a", "rt": 532.0}}

Values that JSON cannot hold are made plain: NaN and infinities become null, arrays lists.
Whatever a page sends is checked (types, sizes, depth) before the script can read it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import itertools
import json
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from rtcloud.errors import RemoteCallError, ServiceUnavailableError, ValidationError
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.server.subject_relay import DELIVERED, SubjectRelay, peer_instance
from rtcloud.utils import json_plain

__all__ = ["BrowserPeer", "MAX_PAGE_MESSAGE", "serve_feedback_page"]

logger = logging.getLogger(__name__)

#: Largest message a page may send (bytes of JSON).
MAX_PAGE_MESSAGE = 64 * 1024


#: How SubjectInterface binds the arguments of the calls a page receives.
_SIGNATURES = {name: inspect.signature(getattr(SubjectInterface, name)) for name in DELIVERED}


def _page_message(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The page's form of a SubjectInterface call (already checked by the relay)."""
    bound = _SIGNATURES[method].bind(None, *args, **kwargs)
    bound.apply_defaults()
    given = bound.arguments
    if method == "setMessage":
        return {"type": "message", "text": str(given["message"])}
    message: dict[str, Any] = {"onsetTimeDelayMs": json_plain(given["onsetTimeDelayMs"])}
    if given.get("late"):
        message["late"] = True
    if method == "setResult":
        message.update(type="result", runId=given["runId"], trId=given["trId"])
        message["value"] = given["value"]
    else:
        message.update(type="resultDict", name=given["name"], values=given["values"])
    return json_plain(message)  # type: ignore[no-any-return]


class BrowserPeer:
    """One connected feedback page, as a peer of the relay.

    Messages leave in the order :meth:`deliver` was called, through one sender task.
    """

    def __init__(
        self, ws: WebSocket, loop: asyncio.AbstractEventLoop, name: str, key: str
    ) -> None:
        self._ws = ws
        self._loop = loop
        self._name = name
        self._key = key
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._outbox: collections.deque[tuple[int, str]] = collections.deque()
        self._wake = asyncio.Event()
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def key(self) -> str:
        return self._key

    def deliver(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise ServiceUnavailableError(f"the {self._name} is not connected")
        message = _page_message(method, args, kwargs)
        message["id"] = next(self._ids)
        text = json.dumps(message, allow_nan=False)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._queue, message["id"], text, future)
        return future

    def _queue(self, call_id: int, text: str, future: concurrent.futures.Future[Any]) -> None:
        if self._closed:
            future.set_exception(ServiceUnavailableError(f"the {self._name} disconnected"))
            return
        self._pending[call_id] = future
        self._outbox.append((call_id, text))
        self._wake.set()

    async def sender(self) -> None:
        """Send queued messages in order until the page is gone."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                call_id, text = self._outbox.popleft()
                try:
                    await self._ws.send_text(text)
                except Exception as exc:  # the socket is gone: fail this delivery now
                    gone = ServiceUnavailableError(f"the {self._name} is gone: {exc}")
                    self._fail(call_id, gone)

    def _fail(self, call_id: int, exc: Exception) -> None:
        future = self._pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_exception(exc)

    def on_reply(self, message: dict[str, Any]) -> None:
        call_id = message.get("id")
        future = self._pending.pop(call_id, None) if isinstance(call_id, int) else None
        if future is None or future.done():
            return
        if message["type"] == "ack":
            future.set_result(None)
        else:
            error = str(message.get("error", "unknown error"))[:2000]
            future.set_exception(RemoteCallError(f"the {self._name} reported: {error}"))

    def close(self) -> None:
        self._closed = True
        self._outbox.clear()
        self._wake.set()
        for call_id in list(self._pending):
            self._fail(call_id, ServiceUnavailableError(f"the {self._name} disconnected"))


def _check_response(message: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    run_id, tr_id, response = message.get("runId"), message.get("trId"), message.get("response")
    for what, value in (("runId", run_id), ("trId", tr_id)):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValidationError(f"a response needs {what} as a number or text, got {value!r}")
    if not isinstance(response, dict):
        raise ValidationError("a response needs 'response' as an object")
    return run_id, tr_id, json_plain(response)


async def serve_feedback_page(ws: WebSocket, relay: SubjectRelay, user: str) -> None:
    """Serve one feedback page until it closes."""
    await ws.accept()
    client = ws.client.host if ws.client else "?"
    name = f"feedback page ({user}@{client})"
    instance = peer_instance(ws.query_params)  # the page's tab, kept across reloads
    peer = BrowserPeer(ws, asyncio.get_running_loop(), name, f"{name} #{instance}")
    await ws.send_text(json.dumps({"type": "hello", "message": relay.local.message}))
    sender = asyncio.create_task(peer.sender())
    relay.add_peer(peer, greeted=True)  # the hello carried the current message
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            try:
                if text is None:
                    raise ValidationError("messages must be JSON text frames")
                if len(text) > MAX_PAGE_MESSAGE:
                    raise ValidationError(f"messages may hold at most {MAX_PAGE_MESSAGE} bytes")
                message = json.loads(text)
                if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                    raise ValidationError("a message must be a JSON object with a 'type'")
                kind = message["type"]
                if kind in ("ack", "error"):
                    peer.on_reply(message)
                elif kind == "response":
                    relay.local.addResponse(*_check_response(message))
                else:
                    raise ValidationError(f"unknown message type {kind[:40]!r}")
            except (ValueError, ValidationError) as exc:
                logger.warning("%s sent a bad message: %s", peer.name, exc)
                await ws.send_text(json.dumps({"type": "refused", "error": str(exc)}))
    except WebSocketDisconnect:
        pass
    finally:
        peer.close()
        relay.remove_peer(peer)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
