"""Feedback for presentation scripts (PsychoPy or plain Python) on the stimulus computer.

A :class:`FeedbackClient` connects to the project server as the subject service, in a
background thread of the presentation script itself, so results arrive without files or
polling::

    from rtcloud.feedback import FeedbackClient

    fb = FeedbackClient("server:8888", "alice", password).start()
    result = fb.wait_for_result(runId=1, trId=5, timeout=3)   # returns at its onset time
    if result is not None:
        draw(result["value"])
    fb.send_response(1, 5, {"key": "space", "rt": 0.42})      # the script's getResponse sees it

``wait_for_result`` returns at the moment the result should be shown: its arrival time plus
its ``onsetTimeDelayMs``. Messages set with ``setMessage`` are read with :meth:`message`.
Several presentation programs may be connected at once (this client, ``rtcloud
subject-service`` writing files, a jsPsych page): each gets every result. Results that reach
this client late (kept by the server while its link was down) are not handed out as if they
were live: the participant never sees stale feedback (``show_late=True`` hands them out too,
marked ``"late": True``). It comes with rtcloud: ``pip install rtcloud`` into the Python the
presentation program runs (PsychoPy's own, for PsychoPy).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any

from rtcloud.errors import ServiceUnavailableError
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.transport.ws_client import ServiceClient

__all__ = ["KEEP_UNSENT", "FeedbackClient"]

logger = logging.getLogger(__name__)

#: Responses kept while the link is down (the oldest are dropped beyond).
KEEP_UNSENT = 1000


class FeedbackClient:
    """Receive feedback results and messages; send the participant's responses back."""

    def __init__(
        self,
        server: str,
        username: str,
        password: str,
        *,
        tls: bool = False,
        fingerprint: str | None = None,
        cafile: str | None = None,
        show_late: bool = False,
    ) -> None:
        self.subject = SubjectInterface()
        self.show_late = show_late
        self._client = ServiceClient(
            server,
            "subject",
            {"SubjectInterface": self.subject},
            username=username,
            password=password,
            tls=tls,
            fingerprint=fingerprint,
            cafile=cafile,
            label="feedback client",
        )
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._early: dict[tuple[Any, Any], dict[str, Any]] = {}
        # responses made while the link was down, sent in order once it is back
        self._unsent: collections.deque[tuple[Any, Any, dict[str, Any]]] = collections.deque(
            maxlen=KEEP_UNSENT
        )

    def start(self, timeout: float = 10.0) -> FeedbackClient:
        """Connect in a background thread; return once connected (or raise)."""

        def run() -> None:
            try:
                self._client.run_forever()
            except BaseException as exc:  # reported to the presentation script
                self._failure = exc

        self._thread = threading.Thread(target=run, name="rtcloud-feedback", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise self._failure
            if self._client.connected.wait(0.05):
                return self
        raise ServiceUnavailableError(
            f"could not connect to the rtcloud server at {self._client.host}:{self._client.port} "
            f"within {timeout:g} s; is rtcloud serve running there, and is the address (and "
            "--tls for a server with TLS) right?"
        )

    @property
    def connected(self) -> bool:
        return self._client.connected.is_set()

    def next_result(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next result (any run/volume) at its onset time, or None after ``timeout`` s."""
        if self._early:
            key = next(iter(self._early))
            return self._at_onset(self._early.pop(key))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                result = self.subject.dequeueResult(block=True, timeout=remaining)
            except queue.Empty:
                return None
            if self.show_late or not result.get("late"):
                return self._at_onset(result)

    def wait_for_result(self, runId: int, trId: int, timeout: float) -> dict[str, Any] | None:
        """The result of volume ``trId`` of run ``runId`` at its onset time; None on timeout.

        Results of other volumes that arrive meanwhile are kept for later calls.
        """
        key = (runId, trId)
        deadline = time.monotonic() + timeout
        while key not in self._early:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                result = self.subject.dequeueResult(block=True, timeout=remaining)
            except queue.Empty:
                return None
            if result.get("late") and not self.show_late:
                continue  # its moment has passed: not shown as if it were live
            if "name" not in result:  # a setResultDict's values are not a volume's result
                self._early[(result.get("runId"), result.get("trId"))] = result
        return self._at_onset(self._early.pop(key))

    @staticmethod
    def _at_onset(result: dict[str, Any]) -> dict[str, Any]:
        onset = (
            float(result.get("timestamp", time.time()))
            + float(result.get("onsetTimeDelayMs", 0) or 0) / 1000.0
        )
        wait = onset - time.time()
        if wait > 0:
            time.sleep(wait)
        result["shownAt"] = time.time()
        return result

    def message(self) -> str:
        """The latest message from ``setMessage`` ("" if none yet)."""
        return self.subject.message

    def send_response(
        self, runId: int, trId: int, response: dict[str, Any], timeout: float = 5.0
    ) -> None:
        """Send the participant's response to a volume to the server, and wait until it is kept.

        The experiment script reads it with ``getResponse(runId, trId)`` or
        ``getAllResponses()``. While the link is down (the client reconnects by itself) the
        response is kept, with up to :data:`KEEP_UNSENT` others, and sent in order by the next
        call of this method or of :meth:`flush_responses` once the link is back: a key press
        during a network drop is not lost, and the presentation script does not stop.
        Raises CallTimeout after ``timeout`` seconds.
        """
        self._unsent.append((runId, trId, dict(response)))
        self.flush_responses(timeout)

    def flush_responses(self, timeout: float = 5.0) -> int:
        """Send the responses kept while the link was down; how many are still unsent."""
        while self._unsent:
            run_id, tr_id, response = self._unsent[0]
            try:
                self._client.call(
                    "SubjectInterface", "addResponse", (run_id, tr_id, response), timeout=timeout
                )
            except ServiceUnavailableError:
                logger.warning(
                    "the link to the server is down: %d response(s) kept to send when it is back",
                    len(self._unsent),
                )
                break
            self._unsent.popleft()
        return len(self._unsent)

    def close(self) -> None:
        if self._unsent:
            self.flush_responses()
        if self._unsent:
            logger.warning("%d response(s) could not be sent before closing", len(self._unsent))
        self._client.stop()
        if self._thread is not None:
            self._thread.join(5)
