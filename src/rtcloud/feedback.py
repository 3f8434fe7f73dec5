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
subject-service`` writing files, a jsPsych page): each gets every result.
Only the standard library, ``websockets`` and ``msgpack`` are needed at run time.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from rtcloud.errors import ServiceUnavailableError
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.transport.ws_client import ServiceClient

__all__ = ["FeedbackClient"]


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
    ) -> None:
        self.subject = SubjectInterface()
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
            f"within {timeout:g} s; is it running with --subjectRemote?"
        )

    @property
    def connected(self) -> bool:
        return self._client.connected.is_set()

    def next_result(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next result (any run/volume) at its onset time, or None after ``timeout`` s."""
        if self._early:
            key = next(iter(self._early))
            return self._at_onset(self._early.pop(key))
        try:
            result = self.subject.dequeueResult(block=True, timeout=timeout)
        except queue.Empty:
            return None
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
        ``getAllResponses()``. Raises ServiceUnavailableError while the link is down (the
        client reconnects by itself) and CallTimeout after ``timeout`` seconds.
        """
        self._client.call(
            "SubjectInterface", "addResponse", (runId, trId, dict(response)), timeout=timeout
        )

    def close(self) -> None:
        self._client.stop()
        if self._thread is not None:
            self._thread.join(5)
