"""SubjectRelay: the server's SubjectInterface, delivering feedback to every presentation peer.

Presentation software differs by lab, and one session may use several at once: the subject
service on the stimulus computer (files for MATLAB or PsychoPy, see
:mod:`rtcloud.services.result_files`), a :class:`~rtcloud.feedback.FeedbackClient` inside a
PsychoPy script, a feedback page in a browser (jsPsych). Each connects to the server as a
*peer*; none of them pushes another out.

The script's feedback calls (``setResult``, ``setResultDict``, ``setMessage``) are checked
here once, kept in the server, and delivered to every connected peer, each of which stamps
the arrival on its own clock (``onsetTimeDelayMs`` counts from there). A call returns when
every peer has acknowledged it; a peer's error (its disk is full, it disconnected
mid-call, it did not answer in time) is raised in the script, typed. The participant's
responses, sent by any peer, are kept here and answer ``getResponse`` and
``getAllResponses``, so they survive a peer's restart.

With ``required`` (``rtcloud serve --subjectRemote``) feedback calls fail at once, with a
message saying what to start, while no peer is connected. Without it peers are optional: the
feedback is kept in the server either way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.websockets import WebSocket

from rtcloud.errors import ServiceUnavailableError
from rtcloud.interfaces.subject import KEEP_RESULTS, SubjectInterface
from rtcloud.rpc.dispatch import Dispatcher
from rtcloud.transport.ws_server import ServiceChannel

__all__ = ["DELIVERED", "Peer", "SubjectRelay"]

logger = logging.getLogger(__name__)

#: The calls that go on to every peer; all others are answered by the server.
DELIVERED = frozenset({"setResult", "setResultDict", "setMessage"})


class Peer(Protocol):
    """Something that presents feedback: a subject service, a feedback client, a page."""

    @property
    def name(self) -> str: ...

    def deliver(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> concurrent.futures.Future[Any]: ...

    def result(self, future: concurrent.futures.Future[Any], timeout: float, what: str) -> Any: ...


class _ServicePeer:
    """A subject service or feedback client connected over the RPC WebSocket."""

    def __init__(self, channel: ServiceChannel) -> None:
        self.channel = channel

    @property
    def name(self) -> str:
        return f"subject service {self.channel.peer}"

    def deliver(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> concurrent.futures.Future[Any]:
        return self.channel.call_async("SubjectInterface", method, args, kwargs, timeout)

    def result(self, future: concurrent.futures.Future[Any], timeout: float, what: str) -> Any:
        return self.channel.wait(future, timeout, what)


class SubjectRelay:
    """The server end of SubjectInterface (see the module docstring).

    Args:
        required: feedback calls need at least one connected peer (``--subjectRemote``).
        on_change: called whenever a peer connects or disconnects.
    """

    def __init__(self, required: bool, on_change: Callable[[], None] | None = None) -> None:
        self.required = required
        self._on_change = on_change
        self.local = SubjectInterface(max_queued=KEEP_RESULTS)
        self._dispatcher = Dispatcher()
        self._dispatcher.register("SubjectInterface", self.local)
        #: What peers may call on the server: report the participant's responses.
        self.incoming = Dispatcher()
        self.incoming.register("SubjectInterface", self.local, ["addResponse"])
        self._peers: list[Peer] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ peers

    @property
    def connected(self) -> bool:
        """Always True: the relay itself answers; :meth:`call` checks for peers."""
        return True

    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers)

    def peer_names(self) -> list[str]:
        return [peer.name for peer in self.peers()]

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add_peer(self, peer: Peer) -> None:
        with self._lock:
            self._peers.append(peer)
        logger.info("feedback peer connected: %s", peer.name)
        self._changed()

    def remove_peer(self, peer: Peer) -> None:
        with self._lock:
            if peer in self._peers:
                self._peers.remove(peer)
        logger.info("feedback peer disconnected: %s", peer.name)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def serve_service(self, ws: WebSocket, peer_name: str) -> None:
        """Run one subject service (or feedback client) connection until it closes."""
        channel: ServiceChannel

        def changed() -> None:  # the channel calls this once up and once down
            if channel.connected:
                self.add_peer(peer)
                if self.local.message:
                    self._send_current_message(peer)
            else:
                self.remove_peer(peer)

        channel = ServiceChannel("subject", changed, incoming=self.incoming)
        if self._loop is not None:
            channel.bind_loop(self._loop)
        peer = _ServicePeer(channel)
        await channel.serve(ws, peer_name)

    def _send_current_message(self, peer: Peer) -> None:
        """A peer that connects mid-session shows the current message at once."""
        try:
            future = peer.deliver("setMessage", (self.local.message,), {}, 5.0)
        except ServiceUnavailableError:
            return

        def report(done: concurrent.futures.Future[Any]) -> None:
            if done.exception() is not None:  # no caller to raise to: say it in the log
                logger.warning(
                    "could not show the current message on %s: %s", peer.name, done.exception()
                )

        future.add_done_callback(report)

    # ------------------------------------------------------------ calls from the script

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> Any:
        """Run a SubjectInterface call: kept here, and delivered to the peers if feedback.

        ``timeout`` (from the hub: the call's remote deadline) bounds the peers' answers.
        """
        func = self._dispatcher.resolve(interface, method)
        if method not in DELIVERED:
            return func(*args, **kwargs)
        peers = self.peers()
        if self.required and not peers:
            raise ServiceUnavailableError(
                f"SubjectInterface.{method}: no subject service or feedback page is "
                "connected; on the stimulus computer start rtcloud subject-service -s "
                "HOST:PORT, or open the feedback page (https://HOST:PORT/feedback)"
            )
        value = func(*args, **kwargs)  # checks the arguments before anything is sent
        if peers:
            self._deliver(peers, method, args, kwargs, timeout)
        return value

    def _deliver(
        self,
        peers: list[Peer],
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        sent: list[tuple[Peer, concurrent.futures.Future[Any]]] = []
        failure: Exception | None = None
        for peer in peers:
            try:
                sent.append((peer, peer.deliver(method, args, kwargs, timeout)))
            except Exception as exc:  # the peer left just now: still tell the script
                failure = failure or exc
        for peer, future in sent:
            try:
                peer.result(
                    future, max(0.0, deadline - time.monotonic()), f"SubjectInterface.{method}"
                )
            except Exception as exc:
                logger.warning("%s to %s failed: %s", method, peer.name, exc)
                failure = failure or exc
        if failure is not None:
            raise failure
