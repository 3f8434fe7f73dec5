"""SubjectRelay: the server's SubjectInterface, delivering feedback to every presentation peer.

Presentation software differs by lab, and one session may use several at once: the subject
service on the stimulus computer (files for MATLAB or PsychoPy, see
:mod:`rtcloud.services.result_files`), a :class:`~rtcloud.feedback.FeedbackClient` inside a
PsychoPy script, a feedback page in a browser (jsPsych). Each connects to the server as a
*peer*; none of them pushes another out.

The script's feedback calls (``setResult``, ``setResultDict``, ``setMessage``) are checked
here (arguments, values that can cross the network, and with ``required`` the names the
subject service turns into files), kept, and return at once: a slow, far or hung stimulus
computer never holds up the analysis loop. Behind the call, each connected peer has a
delivery line that sends it every feedback call in the order the script made them, and
notes which ones it confirmed.

- A peer that refuses or fails to present a result (its disk is full, a page reports an
  error): logged, shown on the experimenter's page, and raised as
  :class:`~rtcloud.errors.FeedbackDeliveryError` on the script's next feedback call.
- A peer that does not confirm for :data:`SLOW_AFTER` seconds: logged and shown on the
  page; its results stay in its line, in order.
- A peer that goes away (it restarted, its link dropped): the results it had not confirmed,
  and those made while it was away, are kept (the latest :data:`KEEP_RESULTS`) and
  delivered, in order and marked ``late``, when it connects again (recognized by its kind,
  user and host). A peer seen for the first time gets the kept results that no peer
  confirmed. Delivery is at least once: a result whose confirmation was lost with the link
  comes again, marked late.

The participant's responses, sent by any peer, are kept here and answer ``getResponse`` and
``getAllResponses``, so they survive a peer's restart.

With ``required`` (``rtcloud serve --subjectRemote``) feedback calls fail at once, with a
message saying what to start, until a first peer connects; after that results are kept for
peers that went away. Without it peers are optional: the feedback is kept in the server
either way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.websockets import WebSocket

from rtcloud.errors import FeedbackDeliveryError, ServiceUnavailableError
from rtcloud.interfaces.subject import KEEP_RESULTS, SubjectInterface
from rtcloud.rpc.codec import encode
from rtcloud.rpc.dispatch import Dispatcher
from rtcloud.services.result_files import result_names
from rtcloud.transport.ws_server import ServiceChannel

__all__ = ["DELIVERED", "SLOW_AFTER", "Peer", "SubjectRelay"]

logger = logging.getLogger(__name__)

#: The calls that go on to every peer; all others are answered by the server.
DELIVERED = frozenset({"setResult", "setResultDict", "setMessage"})

#: Seconds a peer may leave a delivery unconfirmed before it is reported as slow.
SLOW_AFTER = 2.0

#: Deadline (seconds) a delivery carries to the peer; nothing waits for it in the script.
DELIVERY_DEADLINE = 60.0

#: Peers that went away whose place in the feedback is remembered.
KEEP_AWAY = 32


class Peer(Protocol):
    """Something that presents feedback: a subject service, a feedback client, a page.

    ``key`` names the peer across reconnections (kind, user and host); ``deliver`` sends
    one feedback call without waiting, in order with the previous ones, and returns the
    future of the peer's confirmation.
    """

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...

    def deliver(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> concurrent.futures.Future[Any]: ...


class _ServicePeer:
    """A subject service or feedback client connected over the RPC WebSocket."""

    def __init__(self, channel: ServiceChannel, kind: str, who: str, instance: str = "") -> None:
        self.channel = channel
        self._name = f"{kind} {who}"
        self._key = f"{self._name} #{instance}" if instance else self._name

    @property
    def name(self) -> str:
        return self._name

    @property
    def key(self) -> str:
        return self._key

    def deliver(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> concurrent.futures.Future[Any]:
        return self.channel.call_async("SubjectInterface", method, args, kwargs, timeout)


@dataclass(eq=False)
class _Feedback:
    """One feedback call of the script, numbered in the order it was made."""

    seq: int
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    made: float  # time.monotonic()
    confirmed: bool = False  # by at least one peer

    def describe(self) -> str:
        if self.method == "setResult":
            run = self.kwargs.get("runId", self.args[0] if self.args else "?")
            tr = self.kwargs.get("trId", self.args[1] if len(self.args) > 1 else "?")
            return f"setResult(run {run}, TR {tr})"
        if self.method == "setResultDict":
            name = self.kwargs.get("name", self.args[2] if len(self.args) > 2 else "defaultname")
            return f"setResultDict({name!r})"
        return self.method


@dataclass(eq=False)
class _Line:
    """Delivery to one connected peer: what it was sent and has not confirmed yet."""

    peer: Peer
    unconfirmed: dict[int, _Feedback] = field(default_factory=dict)
    slow_since: float | None = None  # when it was reported slow


class SubjectRelay:
    """The server end of SubjectInterface (see the module docstring).

    Args:
        required: feedback calls need a peer to have connected (``--subjectRemote``).
        on_change: called whenever a peer connects or disconnects, or the results kept
            for absent peers change.
        on_problem: called with a sentence for the experimenter's page when a delivery
            fails, a peer is slow or away.
    """

    def __init__(
        self,
        required: bool,
        on_change: Callable[[], None] | None = None,
        on_problem: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.required = required
        self._on_change = on_change
        self._on_problem = on_problem
        self.local = SubjectInterface(
            max_queued=KEEP_RESULTS, on_result=_check_names if required else None
        )
        self._dispatcher = Dispatcher()
        self._dispatcher.register("SubjectInterface", self.local)
        #: What peers may call on the server: report the participant's responses.
        self.incoming = Dispatcher()
        self.incoming.register("SubjectInterface", self.local, ["addResponse"])
        self._lock = threading.RLock()  # a delivery may settle inside _send
        self._lines: list[_Line] = []
        self._seq = 0
        self._kept: deque[_Feedback] = deque()  # results, for peers that come back
        self._away: dict[str, int] = {}  # key of an absent peer -> first seq it lacks
        self._ever_connected = False
        self._failure: FeedbackDeliveryError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ peers

    @property
    def connected(self) -> bool:
        """Always True: the relay itself answers; :meth:`call` checks for peers."""
        return True

    def peers(self) -> list[Peer]:
        with self._lock:
            return [line.peer for line in self._lines]

    def peer_names(self) -> list[str]:
        return [peer.name for peer in self.peers()]

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.call_soon_threadsafe(self._watch_slow)

    def add_peer(self, peer: Peer, greeted: bool = False) -> None:
        """A peer connected: send it what it missed (marked late), then everything new.

        The current message goes first too, as a delivery, unless ``greeted``: a feedback
        page has it in its hello, and a message delivered again would read to the page as
        a new one (the experiment's "end" ending a page opened for the next run)."""
        with self._lock:
            line = _Line(peer)
            start = self._away.pop(peer.key, None)
            if start is not None:
                missed = [f for f in self._kept if f.seq >= start]
            else:
                missed = [f for f in self._kept if not f.confirmed]
            for feedback in missed:
                self._send(line, feedback, late=True)
            if self.local.message and not greeted:
                self._send(line, self._new("setMessage", (self.local.message,), {}), False)
            self._lines.append(line)
            self._ever_connected = True
        logger.info("feedback peer connected: %s", peer.name)
        if missed:
            self._problem(
                f"{peer.name} is back: delivering {len(missed)} result(s) kept while it "
                "was away, marked late",
                False,
                logging.INFO,
            )
        self._changed()

    def remove_peer(self, peer: Peer) -> None:
        """A peer left: remember where its feedback stopped, for when it comes back."""
        with self._lock:
            line = next((x for x in self._lines if x.peer is peer), None)
            if line is None:
                return
            self._lines.remove(line)
            first = min(line.unconfirmed, default=self._seq + 1)
            twin = next((x for x in self._lines if x.peer.key == peer.key), None)
            if twin is not None:  # the same peer is connected again already
                for seq in sorted(line.unconfirmed):
                    self._send(twin, line.unconfirmed[seq], late=True)
            else:
                self._away[peer.key] = min(first, self._away.get(peer.key, first))
                while len(self._away) > KEEP_AWAY:
                    del self._away[next(iter(self._away))]
            waiting = len(line.unconfirmed)
        logger.info("feedback peer disconnected: %s", peer.name)
        if twin is None and (waiting or self.required):
            self._problem(
                f"{peer.name} disconnected; feedback is kept for it and delivered, marked "
                f"late, when it reconnects ({waiting} result(s) not confirmed)",
                False,
            )
        self._changed()

    def waiting(self) -> int:
        """Results kept for peers that are away (with ``required`` and no peer: for any)."""
        with self._lock:
            if self._away:
                first = min(self._away.values())
                return sum(1 for f in self._kept if f.seq >= first)
            if self.required and not self._lines:
                return sum(1 for f in self._kept if not f.confirmed)
            return 0

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _problem(self, text: str, failure: bool, level: int = logging.WARNING) -> None:
        logger.log(level, "%s", text)
        if self._on_problem is not None:
            self._on_problem(text, failure)

    async def serve_service(self, ws: WebSocket, peer_name: str) -> None:
        """Run one subject service (or feedback client) connection until it closes."""
        channel: ServiceChannel
        kind = _peer_kind(ws.query_params.get("peer", ""))

        def changed() -> None:  # the channel calls this once up and once down
            if channel.connected:
                self.add_peer(peer)
            else:
                self.remove_peer(peer)

        channel = ServiceChannel("subject", changed, incoming=self.incoming)
        if self._loop is not None:
            channel.bind_loop(self._loop)
        peer = _ServicePeer(channel, kind, peer_name, peer_instance(ws.query_params))
        await channel.serve(ws, peer_name)

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
        """Run a SubjectInterface call: answered here, and if feedback, sent to the peers.

        Feedback calls return once checked and kept; see the module docstring.
        """
        func = self._dispatcher.resolve(interface, method)
        if method not in DELIVERED:
            return func(*args, **kwargs)
        kwargs.pop("late", None)  # the relay's own mark, not a script's
        if self.required and not self._ever_connected:
            raise ServiceUnavailableError(
                f"SubjectInterface.{method}: no subject service or feedback page has "
                "connected; on the stimulus computer start rtcloud subject-service -s "
                "HOST:PORT, or open the feedback page (https://HOST:PORT/feedback)"
            )
        value = func(*args, **kwargs)  # checks the arguments before anything is kept
        encode([args, kwargs])  # and that they can cross the network (SerializationError)
        with self._lock:
            feedback = self._new(method, args, kwargs)
            if method != "setMessage":
                self._keep(feedback)
            for line in self._lines:
                self._send(line, feedback, late=False)
            absent = bool(self._away) or (self.required and not self._lines)
            failure, self._failure = self._failure, None
        if absent and method != "setMessage":
            self._changed()  # the page shows how many results wait
        if failure is not None:
            raise failure
        return value

    def _new(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Feedback:
        self._seq += 1
        return _Feedback(self._seq, method, args, kwargs, time.monotonic())

    def _keep(self, feedback: _Feedback) -> None:
        self._kept.append(feedback)
        if len(self._kept) > KEEP_RESULTS:
            dropped = self._kept.popleft()
            lacking = [k for k, first in self._away.items() if first <= dropped.seq]
            if lacking or not dropped.confirmed:
                logger.warning(
                    "more than %d results kept for absent feedback peers: %s is dropped",
                    KEEP_RESULTS,
                    dropped.describe(),
                )

    def _send(self, line: _Line, feedback: _Feedback, late: bool) -> None:
        """Hand one feedback call to a peer (under the lock: the order is the script's)."""
        kwargs = dict(feedback.kwargs, late=True) if late else feedback.kwargs
        try:
            future = line.peer.deliver(feedback.method, feedback.args, kwargs, DELIVERY_DEADLINE)
        except ServiceUnavailableError:  # leaving just now: remove_peer keeps the place
            line.unconfirmed[feedback.seq] = feedback
            return
        line.unconfirmed[feedback.seq] = feedback
        if len(line.unconfirmed) > KEEP_RESULTS:  # a peer that never confirms: bounded
            del line.unconfirmed[next(iter(line.unconfirmed))]
        future.add_done_callback(lambda done: self._settled(line, feedback, done))

    def _settled(
        self, line: _Line, feedback: _Feedback, future: concurrent.futures.Future[Any]
    ) -> None:
        exc = future.exception()
        if isinstance(exc, ServiceUnavailableError):
            return  # the peer left: the delivery stays unconfirmed, for when it is back
        with self._lock:
            line.unconfirmed.pop(feedback.seq, None)
            if exc is None:
                feedback.confirmed = True
                return
            failure = FeedbackDeliveryError(
                f"{feedback.describe()} could not be delivered to {line.peer.name}: "
                f"{type(exc).__name__}: {exc}"
            )
            self._failure = self._failure or failure
        self._problem(str(failure), True)

    def _watch_slow(self) -> None:
        """Every half second (in the loop): report peers that stopped confirming, and back."""
        now = time.monotonic()
        reports: list[tuple[str, bool]] = []
        with self._lock:
            for line in self._lines:
                oldest = next(iter(line.unconfirmed.values()), None)
                if oldest is not None and now - oldest.made > SLOW_AFTER:
                    if line.slow_since is None:
                        line.slow_since = now
                        reports.append(
                            (
                                f"{line.peer.name} has not confirmed {oldest.describe()} for "
                                f"{now - oldest.made:.1f} s ({len(line.unconfirmed)} "
                                "waiting); the script goes on, feedback follows in order",
                                True,
                            )
                        )
                elif oldest is None and line.slow_since is not None:
                    line.slow_since = None
                    reports.append((f"{line.peer.name} confirms feedback again", False))
        for text, failure in reports:
            self._problem(text, failure, logging.WARNING if failure else logging.INFO)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_later(0.5, self._watch_slow)


def _check_names(result: dict[str, Any]) -> None:
    result_names(result)  # what the subject service would refuse to write


def peer_instance(query: Any) -> str:
    """Which instance of a peer this is (``?instance=`` of its socket: one per subject
    service process, feedback client or page tab), made safe; "" when not given."""
    text = str(query.get("instance", ""))
    return "".join(c for c in text if c.isalnum() or c in "-_")[:40]


def _peer_kind(text: str) -> str:
    """The kind a subject-side peer says it is (``?peer=`` of its socket), made safe."""
    cleaned = "".join(c for c in text if c.isalnum() or c in " -_")[:40].strip()
    return cleaned or "subject service"
