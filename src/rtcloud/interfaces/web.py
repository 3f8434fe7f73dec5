"""WebDisplayInterface: what the experiment script shows on the experimenter's web page.

Each method turns its arguments into one JSON-ready message and hands it to a *sink*: the
project server's browser channel when a server runs, or the log in local mode. The plotted
points are kept here too, so a page that connects later can draw every run so far, and so
are the latest quality records (``sendQuality``, the Quality tab), without their slices
except the newest.
"""

from __future__ import annotations

import base64
import collections
import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rtcloud.errors import InvalidRequestError, ValidationError
from rtcloud.interfaces.expose import Interface, expose
from rtcloud.utils import npToPy

__all__ = ["WebDisplayInterface"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: Quality records kept for pages that connect later (about 1 KB each).
QUALITY_KEEP = 5000
#: A quality record larger than this (bytes, slices included) is refused.
QUALITY_MAX_BYTES = 4 * 1024 * 1024


def _page_value(value: Any, budget: list[int], depth: int = 0, lazy: bool = False) -> Any:
    """``value`` made JSON-ready for the page: bytes as base64 text, NaN and inf as None.

    One pass over the record: ``budget[0]`` (bytes left) shrinks by each value's size
    (text and bytes their length, anything else 8), and the record is refused once it is
    spent, before a large value is converted. An object with a ``__page_value__`` method
    (slices drawn on demand, :class:`rtcloud.preprocess.slices.SliceViews`) stands for what
    that method returns; with ``lazy`` it is left in place, to be drawn later. Converting a
    converted record again gives the same record.
    """
    kind = type(value)
    if kind is str:
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ValidationError(
                f"sendQuality: the record is larger than {QUALITY_MAX_BYTES} bytes"
            )
        return value
    if kind is float:
        budget[0] -= 8
        return value if math.isfinite(value) else None
    if value is None or kind is bool or kind is int:
        budget[0] -= 8
        return value
    if depth > 6:
        raise ValidationError("sendQuality: the record is nested too deeply")
    draw = getattr(value, "__page_value__", None)
    if draw is not None:
        return value if lazy else _page_value(draw(), budget, depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ValidationError(
                f"sendQuality: the record is larger than {QUALITY_MAX_BYTES} bytes"
            )
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _page_value(v, budget, depth + 1, lazy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_page_value(v, budget, depth + 1, lazy) for v in value]
    if isinstance(value, np.generic):  # a numpy scalar
        return _page_value(value.item(), budget, depth + 1)
    if isinstance(value, np.ndarray):
        budget[0] -= 8 * value.size
        if budget[0] < 0:
            raise ValidationError(
                f"sendQuality: the record is larger than {QUALITY_MAX_BYTES} bytes"
            )
        return _page_value(value.tolist(), budget, depth + 1)
    for plain in (str, int, float):  # subclasses (an IntEnum, a str subclass)
        if isinstance(value, plain):
            return _page_value(plain(value), budget, depth)
    raise ValidationError(
        f"sendQuality: values must be numbers, text, bytes, lists or dicts; got "
        f"{type(value).__name__}"
    )


def _quality_record(runId: Any, trId: Any, quality: Any, lazy: bool = False) -> dict[str, Any]:
    """A ``sendQuality`` call checked and made page-ready (see :func:`_page_value`)."""
    run = npToPy(runId)
    if isinstance(run, bool) or not isinstance(run, int) or run < 1:
        raise ValidationError(f"sendQuality: runId must be an integer >= 1, got {runId!r}")
    x = _number(trId, "trId")
    if x is None:
        raise ValidationError(f"sendQuality: trId must be a finite number, got {trId!r}")
    if not isinstance(quality, Mapping):
        raise ValidationError(
            f"sendQuality: quality must be a dict (e.g. result.quality()), got "
            f"{type(quality).__name__}"
        )
    record: dict[str, Any] = _page_value(quality, [QUALITY_MAX_BYTES], lazy=lazy)
    record["runId"] = run
    record["trId"] = x
    return record


def check_quality(
    runId: Any, trId: Any, quality: Any
) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    """``sendQuality`` in a script connected to a server: check the record now (what is
    wrong with it is raised in the script), draw its slices on the sending thread."""
    record = _quality_record(runId, trId, quality, lazy=True)

    def finish() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (record["runId"], record["trId"], _page_value(record, [QUALITY_MAX_BYTES])), {}

    return finish


def _number(value: Any, what: str) -> float | None:
    value = npToPy(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"plotDataPoint: {what} must be a number, got {value!r}")
    as_float = float(value)
    return None if math.isnan(as_float) or math.isinf(as_float) else value


class WebDisplayInterface(Interface):
    """Send plot points, log lines and status to the experimenter's web page.

    Args:
        sink: called with each message dict; without one, messages go to the log.
    """

    def __init__(self, ioLoopInst: Any = None, *, sink: Callable[[Message], None] | None = None):
        self._sink = sink
        self._lock = threading.Lock()
        self._points: dict[int, dict[float, float | None]] = {}
        self._quality: collections.deque[Message] = collections.deque(maxlen=QUALITY_KEEP)
        self._slices: Message | None = None
        #: Called with each quality record before it is sent (the server adds where the
        #: volume's time went on its way to the script).
        self.quality_hook: Callable[[Message], None] | None = None

    def set_sink(self, sink: Callable[[Message], None] | None) -> None:
        """Route messages to ``sink`` (the server's browser channel) from now on."""
        self._sink = sink

    def _send(self, message: Message) -> None:
        if self._sink is not None:
            self._sink(message)
        else:
            logger.info("web: %s", message)

    # ------------------------------------------------------------ logs and status

    @expose
    def userLog(self, message: str) -> None:
        """A line for the Run tab's log."""
        self._send({"cmd": "userLog", "value": str(message)})

    @expose
    def sessionLog(self, message: str) -> None:
        """A line for the Session tab's log."""
        self._send({"cmd": "sessionLog", "value": str(message)})

    @expose
    def debugLog(self, message: str) -> None:
        """A line for the Log tab only."""
        self._send({"cmd": "debugLog", "value": str(message)})

    @expose
    def setUserError(self, message: str) -> None:
        """Show an error line to the experimenter."""
        self._send({"cmd": "userError", "error": str(message)})

    @expose
    def setDebugError(self, message: str) -> None:
        """An error line for the Log tab."""
        self._send({"cmd": "debugError", "error": str(message)})

    @expose
    def sendRunStatus(self, status: str) -> None:
        """Set the run status text on the page."""
        self._send({"cmd": "runStatus", "status": npToPy(status)})

    @expose
    def sendUploadStatus(self, fileName: str) -> None:
        """Report a file transfer on the page."""
        self._send({"cmd": "uploadStatus", "file": str(fileName)})

    @expose
    def sendConfig(self, config: dict[str, Any], filename: str = "") -> None:
        """Send an experiment configuration to the page."""
        self._send({"cmd": "setConfig", "value": npToPy(dict(config)), "filename": filename})

    # ------------------------------------------------------------ plots

    @expose
    def plotDataPoint(self, runId: int, trId: float, value: float) -> None:
        """Add the point (``trId``, ``value``) to the plot of run ``runId`` (1, 2, ...).

        A point with an ``x`` already plotted replaces it.
        """
        run = npToPy(runId)
        if isinstance(run, bool) or not isinstance(run, int) or run < 1:
            # (also a RequestError: what RT-Cloud raised, and its scripts catch)
            raise InvalidRequestError(
                f"plotDataPoint: runId must be an integer >= 1, got {runId!r}"
            )
        x = _number(trId, "trId")
        if x is None:
            raise ValidationError(f"plotDataPoint: trId must be a finite number, got {trId!r}")
        y = _number(value, "value")
        with self._lock:
            self._points.setdefault(run, {})[x] = y
        self._send({"cmd": "plotDataPoint", "runId": run, "trId": x, "value": y})

    @expose
    def clearRunPlot(self, runId: int) -> None:
        """Remove every point of run ``runId``."""
        run = npToPy(runId)
        if isinstance(run, bool) or not isinstance(run, int) or run < 1:
            raise InvalidRequestError(
                f"clearRunPlot: runId must be an integer >= 1, got {runId!r}"
            )
        with self._lock:
            self._points.pop(run, None)
        self._send({"cmd": "plotDataPoint", "runId": run, "trId": None, "value": None})

    @expose
    def clearAllPlots(self) -> None:
        """Remove every point of every run."""
        with self._lock:
            self._points.clear()
        self.sendPreviousDataPoints()

    @expose
    def getPreviousDataPoints(self) -> list[list[dict[str, Any]]]:
        """Every run's points so far: a list per run (index = runId - 1) of ``{x, y}``."""
        with self._lock:
            if not self._points:
                return []
            last = max(self._points)
            return [
                [{"x": x, "y": y} for x, y in sorted(self._points.get(run, {}).items())]
                for run in range(1, last + 1)
            ]

    @expose
    def sendPreviousDataPoints(self) -> None:
        """Send every run's points to the page (it redraws all plots)."""
        self._send({"cmd": "setDataPoints", "value": self.getPreviousDataPoints()})

    # ------------------------------------------------------------ quality view

    @expose(posted=check_quality)
    def sendQuality(self, runId: int, trId: float, quality: Mapping[str, Any]) -> None:
        """Show one volume's preprocessing and quality on the page's Quality tab.

        ``quality`` is what ``rtcloud.preprocess``'s ``result.quality()`` returns, or any
        dict with some of these keys: ``motion`` (tx, ty, tz in mm, rx, ry, rz in degrees),
        ``fd``, ``fdThreshold``, ``dvars``, ``tsnr``, ``tr`` (s), ``usable``,
        ``overThreshold``, ``volumes``, ``volumesOver``, ``usableMinutes``, ``stagesMs``
        (stage -> ms), ``timeline`` (``received``, ``resultSent``, ``resultAcked``: this
        computer's ``time.time()``), ``problems`` (``[{kind, message}]``) and ``slices``
        (three orthogonal slices, see ``rtcloud.preprocess.slices``).

        Through a project server the script does not wait for the page: the record is
        checked in the script (a bad one raises here), then sent in order by a background
        thread; a record that could not be delivered raises on the next ``sendQuality``.
        """
        record = _quality_record(runId, trId, quality)
        run, x = record["runId"], record["trId"]
        if self.quality_hook is not None:
            self.quality_hook(record)
        slices = record.pop("slices", None)
        if slices is not None:
            slices = {"runId": run, "trId": x, **slices}
        with self._lock:
            self._quality.append(record)
            if slices is not None:
                self._slices = slices
        if self._sink is None:  # local mode: a line, not the pictures
            logger.info("quality run %s volume %s: %s", run, x, record)
            return
        self._sink({"cmd": "quality", "record": record, "slices": slices})

    def update_quality(self, record: Message) -> None:
        """Replace a kept record (same ``runId`` and ``trId``) and send it to the pages again."""
        key = (record.get("runId"), record.get("trId"))
        with self._lock:
            for k in range(len(self._quality) - 1, max(-1, len(self._quality) - 100), -1):
                kept = self._quality[k]
                if (kept.get("runId"), kept.get("trId")) == key:
                    self._quality[k] = record
                    break
            else:
                return
        if self._sink is not None:
            self._sink({"cmd": "quality", "record": record, "slices": None})

    def quality_state(self) -> Message:
        """The ``setQuality`` message: every kept record and the newest slices."""
        with self._lock:
            return {"cmd": "setQuality", "value": list(self._quality), "slices": self._slices}

    @expose
    def clearQuality(self) -> None:
        """Forget every quality record (the Quality tab starts empty)."""
        with self._lock:
            self._quality.clear()
            self._slices = None
        self._send(self.quality_state())
