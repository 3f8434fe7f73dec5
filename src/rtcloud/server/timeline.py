"""Where a volume's time went before the script got it, for the Quality tab.

The script reports its own part (when it received the volume, its preprocessing stages, when
it sent the result and when every feedback peer had it) with ``webInterface.sendQuality``.
The part before lives elsewhere: the data service knows when the file was complete and when
it handed the volume over (``DataInterface.getVolumeTimes``, on its own clock), and the
server knows when the reply passed through it. This module joins them:

- the hub reports every ``getImageData``/``getVolume`` call that passes (server clock);
- shortly after such a reply (:data:`FETCH_DELAY`, so that the question does not take the
  CPU from the script while it receives and decodes the volume), a worker thread asks the
  data service for that volume's times and converts them to the server's clock with an
  offset measured by ``ping`` (the round trip halved; re-measured every minute);
- a quality record from the script gets ``hops``, in milliseconds: ``waiting`` (the file
  was complete before the script asked for it: the script was late), ``scanner`` (asked or
  complete, whichever came last -> handed over: the data service's reading and
  anonymizing), ``toServer`` (-> the reply at the server), ``toScript`` (-> received by the
  script).

The record describes the volume the script received last. Scripts and the server share a
computer (and so a clock). When the data service's times arrive only after the script's
record (a busy machine), the record is completed then and handed to ``on_update``, which
sends it to the pages again. A hop that cannot be known is left out.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rtcloud.server.hub import Hub

__all__ = ["VolumeTimeline"]

logger = logging.getLogger(__name__)

VOLUME_METHODS = ("getImageData", "getVolume")
#: Seconds between two measurements of the data service's clock offset.
OFFSET_EVERY = 60.0
#: Seconds after a volume's reply passed the server before its times are asked for. A
#: script's quality record that comes earlier is completed when they arrive.
FETCH_DELAY = 0.02


class VolumeTimeline:
    """Joins the hops of each volume (see the module docstring)."""

    def __init__(
        self, hub: Hub, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self._hub = hub
        #: Called with a record completed after it was sent (its hops came late).
        self.on_update = on_update
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._offset: float | None = None  # data service clock minus server clock
        self._offset_at = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rtcloud-hops")
        self._pending: concurrent.futures.Future[None] | None = None
        hub.observed = frozenset(("DataInterface", m) for m in VOLUME_METHODS)
        hub.observer = self.on_call

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def on_call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        finished: float,
    ) -> None:
        stream = args[0] if args else kwargs.get("streamId")
        index = args[1] if len(args) > 1 else kwargs.get("imageIndex", kwargs.get("index"))
        entry: dict[str, Any] = {"stream": stream, "index": index, "atServer": finished}
        with self._lock:
            self._last = entry
        if isinstance(stream, int) and isinstance(index, int):
            try:
                self._pending = self._pool.submit(self._fetch, entry)
            except RuntimeError:  # shut down
                pass

    def flush(self, timeout: float) -> None:
        """Wait until the latest volume's times have been fetched (or failed to be)."""
        pending = self._pending
        if pending is not None:
            concurrent.futures.wait([pending], timeout)

    def _fetch(self, entry: dict[str, Any]) -> None:
        wait = float(entry["atServer"]) + FETCH_DELAY - time.time()
        if wait > 0:  # never behind: a backlog of volumes is asked for at once
            time.sleep(min(wait, FETCH_DELAY))
        try:
            offset = self._clock_offset()
            times = self._hub.call(
                "DataInterface", "getVolumeTimes", (entry["stream"], entry["index"]), {}, 5.0
            )
        except Exception as exc:  # an old data service, a dropped link: no hop times
            logger.debug("no volume times: %s", exc)
            return
        if not isinstance(times, dict) or times.get("complete") is None:
            return
        with self._lock:
            entry["complete"] = float(times["complete"]) - offset
            entry["sent"] = float(times["sent"]) - offset
            asked = times.get("asked")
            entry["asked"] = entry["complete"] if asked is None else float(asked) - offset
            waiting = entry.pop("records", [])
        for record in waiting:  # sent before these times were known: complete and resend
            late = dict(record)
            late["hops"] = {**record.get("hops", {}), **_scanner_hops(entry)}
            if self.on_update is not None:
                self.on_update(late)

    def _clock_offset(self) -> float:
        now = time.time()
        if self._offset is not None and now - self._offset_at < OFFSET_EVERY:
            return self._offset
        best: tuple[float, float] | None = None
        for _ in range(3):
            t0 = time.time()
            remote = float(self._hub.call("DataInterface", "ping", (), {}, 5.0))
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, remote - (t0 + t1) / 2)
        assert best is not None
        self._offset, self._offset_at = best[1], time.time()
        return self._offset

    def enrich(self, record: dict[str, Any]) -> None:
        """Add ``hops`` (ms) to a quality record from the script, when they are known."""
        timeline = record.get("timeline")
        with self._lock:
            last = self._last
            if last is None or not isinstance(timeline, dict):
                return
            hops = _scanner_hops(last) if "complete" in last else {}
            if not hops and self._pending is not None and not self._pending.done():
                last.setdefault("records", []).append(record)  # completed when they come
            received = timeline.get("received")
            if isinstance(received, (int, float)) and received >= last["atServer"] - 0.001:
                hops["toScript"] = 1000 * max(0.0, received - last["atServer"])
            volume = {"stream": last["stream"], "index": last["index"]}
        if hops:
            record["hops"] = hops
            record["volume"] = volume


def _scanner_hops(entry: dict[str, Any]) -> dict[str, float]:
    """The hops before the server of a volume whose data-service times are known."""
    start = max(entry["complete"], entry["asked"])
    return {
        "waiting": 1000 * max(0.0, entry["asked"] - entry["complete"]),
        "scanner": 1000 * max(0.0, entry["sent"] - start),
        "toServer": 1000 * max(0.0, entry["atServer"] - entry["sent"]),
    }
