"""SubjectInterface: feedback results and messages for the participant, responses back.

The experiment script calls ``setResult`` / ``setResultDict`` / ``setMessage``; this object
queues them for whatever presents feedback (a PsychoPy script, the subject service that
writes files for MATLAB, a jsPsych page) and keeps the participant's responses, which the
presentation side adds with :meth:`SubjectInterface.addResponse` and the script reads with
``getResponse`` / ``getAllResponses``.
"""

from __future__ import annotations

import logging
import math
import numbers
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rtcloud.errors import ValidationError
from rtcloud.interfaces.expose import Interface, expose
from rtcloud.utils import npToPy

__all__ = ["KEEP_RESULTS", "SubjectInterface"]

logger = logging.getLogger(__name__)


def _check_delay(onsetTimeDelayMs: Any) -> float:
    """A delay in ms as a float: any real number (numpy's too: scripts compute delays with
    numpy), not a bool, NaN, infinite or below 0."""
    if isinstance(onsetTimeDelayMs, (bool, np.bool_)) or not isinstance(
        onsetTimeDelayMs, (numbers.Real, np.integer, np.floating)
    ):
        raise ValidationError(
            f"onsetTimeDelayMs must be a number of milliseconds, got {onsetTimeDelayMs!r}"
        )
    delay = float(onsetTimeDelayMs)
    if not math.isfinite(delay) or delay < 0:
        raise ValidationError(
            f"onsetTimeDelayMs must be a finite number >= 0 ms, got {onsetTimeDelayMs!r}"
        )
    return delay


#: Results kept for ``dequeueResult`` by a process that passes every result on as it comes
#: (the server's relay, the subject service): older ones are dropped, so a long session's
#: memory does not grow with every volume.
KEEP_RESULTS = 1000


class SubjectInterface(Interface):
    """Queue feedback for the participant and collect their responses.

    Args:
        subjectRemote: must be False here; remote subject interfaces are made by
            :class:`~rtcloud.interfaces.client.ClientInterface` when a project server runs
            with ``--subjectRemote``.
        on_result: called with every queued result (dict) as it is queued, e.g. by the
            subject service to write files; exceptions from it propagate to the caller.
        on_message: called with every message text set with :meth:`setMessage`.
        max_queued: keep at most this many results for :meth:`dequeueResult` (the oldest
            are dropped); None keeps all.
    """

    def __init__(
        self,
        subjectRemote: bool = False,
        *,
        on_result: Callable[[dict[str, Any]], object] | None = None,
        on_message: Callable[[str], None] | None = None,
        max_queued: int | None = None,
    ) -> None:
        if subjectRemote:
            from rtcloud.errors import StateError

            raise StateError(
                "SubjectInterface(subjectRemote=True) is not created by hand: start the "
                "project server with --subjectRemote and use ClientInterface().subjInterface"
            )
        self.msgQueue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._max_queued = max_queued
        self.message = ""
        self._on_result = on_result
        self._on_message = on_message
        self._responses_lock = threading.Lock()
        self._responses: dict[tuple[Any, Any], dict[str, Any]] = {}
        self._unread: list[dict[str, Any]] = []

    def _queue(self, result: dict[str, Any]) -> None:
        if self._max_queued is not None:
            while self.msgQueue.qsize() >= self._max_queued:
                try:
                    self.msgQueue.get_nowait()
                except queue.Empty:
                    break
        self.msgQueue.put(result)
        if self._on_result is not None:
            self._on_result(result)

    @expose(quick=True)
    def setResult(
        self,
        runId: int,
        trId: int,
        value: float,
        onsetTimeDelayMs: float = 0,
        *,
        late: bool = False,
    ) -> None:
        """Send the result ``value`` of volume ``trId`` of run ``runId`` to the participant.

        ``onsetTimeDelayMs`` (>= 0) is how long after the result arrives the presentation
        side should show it, e.g. to align feedback with the next TR. ``late`` is set by
        the server, not by scripts: on a result it kept while this presentation side was
        away and delivers after it reconnected (the result then carries ``"late": True``).
        """
        delay = _check_delay(onsetTimeDelayMs)
        result = {
            "runId": npToPy(runId),
            "trId": npToPy(trId),
            "value": npToPy(value),
            "onsetTimeDelayMs": delay,
            "timestamp": time.time(),
        }
        if late:
            result["late"] = True
        logger.debug("setResult run %s tr %s value %s", runId, trId, value)
        self._queue(result)

    @expose(quick=True)
    def setResultDict(
        self,
        values: Mapping[str, Any],
        onsetTimeDelayMs: float = 0,
        name: str = "defaultname",
        *,
        late: bool = False,
    ) -> None:
        """Send a dict of values to the participant side, labelled ``name``.

        The subject service writes each such result as ``<outDir>/<name>.json``. ``late``:
        as for :meth:`setResult`.
        """
        delay = _check_delay(onsetTimeDelayMs)
        if not isinstance(values, Mapping):
            raise ValidationError(
                f"setResultDict: values must be a dict, got {type(values).__name__}"
            )
        if not isinstance(name, str) or not name:
            raise ValidationError(f"setResultDict: name must be a non-empty string, got {name!r}")
        result = {str(k): npToPy(v) for k, v in values.items()}
        result.update(name=name, onsetTimeDelayMs=delay, timestamp=time.time())
        if late:
            result["late"] = True
        logger.debug("setResultDict %s (%d values)", name, len(values))
        self._queue(result)

    @expose(quick=True)
    def setMessage(self, message: str) -> None:
        """Show a text message to the participant (e.g. "Preparing run ...")."""
        self.message = str(message)
        logger.debug("setMessage %s", self.message)
        if self._on_message is not None:
            self._on_message(self.message)

    @expose(quick=True)
    def getResponse(self, runId: int, trId: int) -> dict[str, Any]:
        """The participant's response to volume ``trId`` of run ``runId`` ({} if none)."""
        with self._responses_lock:
            return dict(self._responses.get((npToPy(runId), npToPy(trId)), {}))

    @expose(quick=True)
    def getAllResponses(self) -> list[dict[str, Any]]:
        """Every response received since the previous call, oldest first."""
        with self._responses_lock:
            unread, self._unread = self._unread, []
        return unread

    @expose(quick=True)
    def addResponse(self, runId: int, trId: int, response: Mapping[str, Any]) -> None:
        """Record a response of the participant (called by the presentation side)."""
        entry = {str(k): npToPy(v) for k, v in response.items()}
        entry.setdefault("runId", npToPy(runId))
        entry.setdefault("trId", npToPy(trId))
        entry.setdefault("timestamp", time.time())
        with self._responses_lock:
            self._responses[(npToPy(runId), npToPy(trId))] = entry
            self._unread.append(entry)

    @expose
    def dequeueResult(self, block: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Pop the oldest queued result (for the presentation side); ``queue.Empty`` if none."""
        return self.msgQueue.get(block=block, timeout=timeout)
