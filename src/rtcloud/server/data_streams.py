"""DataStreams: the server side of a remote DataInterface, so a run survives a service restart.

A data service keeps its streams and its watch in memory: when it restarts (or its link
drops and it reconnects) they are gone, and its stream ids start again at 1. The script
must not notice. So the server, not the transport, keeps what a stream needs:

- ``initScannerStream`` opens the stream on the service and hands the script an id of the
  server's own, mapped to the service's id on that connection (its *generation*, numbered
  by :class:`~rtcloud.transport.ws_server.ServiceChannel`); the server keeps the call's
  arguments and the stream's next volume;
- ``getImageData`` on a stream opened on an earlier connection first opens it again on the
  current one (with the same arguments), then asks for the volume the script is at: the
  restarted service goes on where the script was, not at volume 0;
- ``getVolume`` likewise, with the stream's next volume;
- ``initWatch`` / ``watchFile`` likewise for the one watch;
- :class:`BidsStreams` does the same for ``BidsInterface``'s streams (``init*Stream``,
  ``getIncremental`` at the stream's next volume, ``getNumVolumes``, ``closeStream``).

A call that only reads (a volume, a file, a listing, the watch) and meets a dropped link
waits for the service to connect again, for at most :data:`RECONNECT_GRACE` seconds and
within its own deadline, and is made again there: a link that drops for a moment mid-scan
does not end an unchanged script's run (it reconnects within a second). Calls that change
something (``putFile``, set-ups) fail at once, as they did, and so does every call while
no service has ever connected.

Set-ups are restored when they are used, never all at once on connect: streams of earlier
runs that the script no longer reads are not opened again, so nothing piles up on the
service run after run, and a service that connects is ready at once. The server remembers
the latest :data:`KEEP_STREAMS` streams. Every other call passes through unchanged.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from rtcloud.errors import (
    CallTimeout,
    NoSuchStreamError,
    ServiceUnavailableError,
    ValidationError,
)
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.transport.ws_server import Reconnected, ServiceChannel

__all__ = ["KEEP_STREAMS", "RECONNECT_GRACE", "BidsStreams", "DataStreams"]

logger = logging.getLogger(__name__)

#: Streams whose set-up the server keeps (the oldest are forgotten first).
KEEP_STREAMS = 256

#: Seconds a call that only reads waits for a dropped data service to connect again.
RECONNECT_GRACE = 5.0

#: DataInterface calls that only read: made again after the link dropped and came back.
REPEATABLE = frozenset(
    {
        "getImageData",
        "getVolume",
        "watchFile",
        "getFile",
        "getNewestFile",
        "listFiles",
        "listDirs",
        "getAllowedFileTypes",
        "ping",
        "getClockSkew",
        "getVolumeTimes",
        "getIncremental",
        "getNumVolumes",
    }
)

_GET_IMAGE = inspect.signature(DataInterface.getImageData)
_GET_VOLUME = inspect.signature(DataInterface.getVolume)
_VOLUME_TIMES = inspect.signature(DataInterface.getVolumeTimes)
_WATCH_FILE = inspect.signature(DataInterface.watchFile)
_GET_INCREMENTAL = inspect.signature(BidsInterface.getIncremental)
_BIDS_STREAM_ID = inspect.signature(BidsInterface.getNumVolumes)
#: BidsInterface calls that open a stream (restored on a new connection as streams are).
BIDS_OPENERS = frozenset({"initDicomBidsStream", "initBidsStream", "initOpenNeuroStream"})


@dataclass(eq=False)
class _SetUp:
    """A set-up call (a stream or the watch) and where it currently lives."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    generation: int = 0  # the connection it was made on
    service_id: Any = None  # the service's stream id on that connection
    next_index: int = 0
    next_volume: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class DataStreams:
    """The ``DataInterface`` target of the hub with ``--dataRemote`` (see the module docstring)."""

    #: the interface whose calls this object restores
    interface = "DataInterface"

    def __init__(self, channel: ServiceChannel) -> None:
        self.channel = channel
        self._lock = threading.Lock()
        self._streams: OrderedDict[int, _SetUp] = OrderedDict()
        self._next_id = 1
        self._watch: _SetUp | None = None

    @property
    def connected(self) -> bool:
        return self.channel.connected

    @property
    def reconnecting(self) -> bool:
        """A service was connected before: calls come here to wait for it (or to fail with
        a message saying it dropped) rather than being told to start one."""
        return self.channel.connections > 0

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> Any:
        """Run a DataInterface call on the service, keeping and restoring set-ups."""
        deadline = time.monotonic() + timeout
        if method == "initScannerStream":
            return self._open_stream(_SetUp(method, args, kwargs), deadline)
        if method == "initWatch":
            watch = _SetUp(method, args, kwargs)
            self._restore(watch, deadline)
            self._watch = watch
            return None
        if method in ("getImageData", "getVolume"):
            return self._get_image(method, args, kwargs, deadline, raw)
        if method == "getVolumeTimes":
            return self._volume_times(args, kwargs, deadline)
        if method == "watchFile" and self._watch is not None:
            _bind(_WATCH_FILE, args, kwargs)  # a bad call fails here, not after a restore
            return self._on(self._watch, deadline, raw, method, lambda _sid: (args, kwargs))
        while True:
            try:
                return self.channel.call(
                    interface, method, args, kwargs, _remaining(deadline, method), raw
                )
            except ServiceUnavailableError as exc:
                if method not in REPEATABLE:
                    raise ServiceUnavailableError(
                        f"{self.interface}.{method}: the data service's link dropped and it has "
                        "not connected again yet; it reconnects by itself (see its window), "
                        "call again once it is back"
                    ) from exc
                self._wait_for_service(exc, deadline, method)

    def _wait_for_service(
        self, error: ServiceUnavailableError, deadline: float, method: str
    ) -> None:
        """After a dropped link: return once the service is connected again, or raise
        ``error`` (no service ever connected, or none back within the grace or deadline)."""
        if not self.channel.connections:
            raise error
        started = time.monotonic()
        until = min(deadline, started + RECONNECT_GRACE)
        while not self.channel.connected:
            if time.monotonic() >= until:
                raise ServiceUnavailableError(
                    f"{error} (waited {time.monotonic() - started:.1f} s for it to connect again)"
                ) from None
            time.sleep(0.02)
        logger.info(
            "%s.%s: the data service was back after %.2f s; asking again",
            self.interface,
            method,
            time.monotonic() - started,
        )

    # ------------------------------------------------------------ streams

    def _open_stream(self, stream: _SetUp, deadline: float) -> int:
        self._restore(stream, deadline)
        with self._lock:
            held = self._next_id
            self._next_id += 1
            self._streams[held] = stream
            while len(self._streams) > KEEP_STREAMS:
                self._streams.popitem(last=False)
        return held

    def _get_image(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float,
        raw: bool,
    ) -> Any:
        """getImageData or getVolume: the stream's id on the service, an explicit index."""
        volume = method == "getVolume"
        given = _bind(_GET_VOLUME if volume else _GET_IMAGE, args, kwargs)
        held = given["streamId"]
        with self._lock:
            stream = self._streams.get(held) if isinstance(held, int) else None
        if stream is None:
            raise ValidationError(
                f"unknown stream id {held!r}; use the id returned by initScannerStream "
                f"(the server keeps the latest {KEEP_STREAMS} streams)"
            )
        index = given["volumeIndex" if volume else "imageIndex"]
        if index is None:
            index = stream.next_volume if volume else stream.next_index
        timeout = given["timeout"]

        def for_service(service_id: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (service_id, index, timeout), {}

        value = self._on(stream, deadline, raw, method, for_service)
        if isinstance(index, int):
            with stream.lock:
                if volume:
                    stream.next_volume = index + 1
                else:
                    stream.next_index = index + 1
            arrived = getattr(value, "add_done_callback", None)
            if arrived is not None:  # passed on while it arrives: it may yet fail to

                def undo(error: Exception | None) -> None:
                    if error is None:
                        return
                    with stream.lock:  # the next call without an index asks for it again
                        if volume and stream.next_volume == index + 1:
                            stream.next_volume = index
                        elif not volume and stream.next_index == index + 1:
                            stream.next_index = index

                arrived(undo)
        return value

    def _volume_times(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float
    ) -> dict[str, float | None]:
        """A volume's times, from the service that holds its stream now.

        A stream that lives on an earlier connection (the service restarted since) has no
        times left there: all None then.
        """
        given = _bind(_VOLUME_TIMES, args, kwargs)
        held = given["streamId"]
        with self._lock:
            stream = self._streams.get(held) if isinstance(held, int) else None
        if stream is None:
            raise ValidationError(f"unknown stream id {held!r}")
        unknown: dict[str, float | None] = dict.fromkeys(("complete", "asked", "sent", "clock"))
        generation = self.channel.generation
        if not generation or stream.generation != generation:
            return unknown
        try:
            value: dict[str, float | None] = self.channel.call(
                "DataInterface",
                "getVolumeTimes",
                (stream.service_id, given["imageIndex"]),
                {},
                _remaining(deadline, "getVolumeTimes"),
                generation=generation,
            )
        except Reconnected:
            return unknown
        return value

    # ------------------------------------------------------------ the set-up's connection

    def _on(
        self,
        setup: _SetUp,
        deadline: float,
        raw: bool,
        method: str,
        arguments: Any,
    ) -> Any:
        """Call ``method`` where ``setup`` lives, restoring it first on a new connection."""
        while True:
            try:
                generation, service_id = self._restore(setup, deadline)
                args, kwargs = arguments(service_id)
                return self.channel.call(
                    self.interface,
                    method,
                    args,
                    kwargs,
                    _remaining(deadline, method),
                    raw,
                    generation=generation,
                )
            except Reconnected:
                continue  # restored on the new connection at the next turn
            except ServiceUnavailableError as exc:  # the link dropped: wait for it
                if method not in REPEATABLE:
                    raise
                self._wait_for_service(exc, deadline, method)

    def _restore(self, setup: _SetUp, deadline: float) -> tuple[int, Any]:
        """(generation, service id) of ``setup`` on the current connection, made there if new."""
        with setup.lock:
            while True:
                generation = self.channel.generation
                if generation and setup.generation == generation:
                    return generation, setup.service_id
                again = setup.generation != 0
                try:
                    value = self.channel.call(
                        self.interface,
                        setup.method,
                        setup.args,
                        setup.kwargs,
                        _remaining(deadline, setup.method),
                        generation=generation,
                    )
                except Reconnected:
                    continue
                setup.generation, setup.service_id = generation, value
                if again:
                    logger.info("restored %s on the reconnected data service", setup.method)
                return generation, value


class BidsStreams(DataStreams):
    """The ``BidsInterface`` target of the hub with ``--dataRemote``: BIDS streams live in
    the data service like data streams, and survive its restart the same way (the server
    holds their ids, the calls that opened them and the next volume of each)."""

    interface = "BidsInterface"

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> Any:
        deadline = time.monotonic() + timeout
        if method in BIDS_OPENERS:
            return self._open_stream(_SetUp(method, args, kwargs), deadline)
        if method == "getIncremental":
            return self._get_incremental(args, kwargs, deadline, raw)
        if method in ("getNumVolumes", "closeStream"):
            held = _bind(_BIDS_STREAM_ID, args, kwargs)["streamId"]
            stream = self._held(held)
            if method == "closeStream":
                with self._lock:
                    self._streams.pop(held, None)
                if stream.generation != self.channel.generation:
                    return None  # it lived on a connection that is gone
            return self._on(stream, deadline, raw, method, lambda sid: ((sid,), {}))
        return super().call(interface, method, args, kwargs, timeout, raw)

    def _held(self, held: Any) -> _SetUp:
        with self._lock:
            stream = self._streams.get(held) if isinstance(held, int) else None
        if stream is None:
            raise NoSuchStreamError(
                f"unknown BIDS stream id {held!r}; use the id an init*Stream call returned"
            )
        return stream

    def _get_incremental(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float, raw: bool
    ) -> Any:
        given = _bind(_GET_INCREMENTAL, args, kwargs)
        stream = self._held(given["streamId"])
        asked = given["volIdx"]
        index = stream.next_index if asked is None or int(asked) < 0 else int(asked)

        def for_service(service_id: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (service_id, index, given["timeout"], given["demoStep"]), {}

        value = self._on(stream, deadline, raw, "getIncremental", for_service)
        with stream.lock:
            stream.next_index = index + 1
        return value


def _bind(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The call's arguments by name, defaults applied; ValidationError if they do not fit."""
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise ValidationError(f"DataInterface: {exc}") from None
    bound.apply_defaults()
    return bound.arguments


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise CallTimeout(f"DataInterface.{what}: no time left before the call's deadline")
    return left
