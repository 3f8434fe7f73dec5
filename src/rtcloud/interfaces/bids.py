"""BidsInterface: streams of BIDS incrementals, from a scanner's DICOMs, a BIDS dataset on
disk, or an OpenNeuro dataset.

Like :class:`~rtcloud.interfaces.data.DataInterface`, this object does the work where it
lives: in the experiment script (local mode), in the project server, or in the scanner-side
data service (``--dataRemote``). A DICOM stream therefore turns each volume into an
anonymized :class:`~rtcloud.bids.incremental.BidsIncremental` on the scanner side, and only
the incremental (NIfTI bytes and plain metadata) leaves that computer.

Every folder it reads must lie inside the allowed directories. Each ``init*Stream`` returns a
new stream id; several streams may be open at once (RT-Cloud's were all id 1, each replacing
the last).

Pacing: a DICOM stream delivers each volume as soon as it is complete. A replayed dataset
delivers at once, every ``demoStep`` seconds, or at the run's own TR with
``demoStep="tr"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rtcloud.bids.archive import BidsArchive
from rtcloud.bids.dicom import nifti_to_incremental
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.bids.run import BidsRun
from rtcloud.errors import (
    MissingMetadataError,
    NoSuchStreamError,
    RequestError,
    StateError,
    ValidationError,
)
from rtcloud.interfaces.data import MAX_STREAMS, DataInterface
from rtcloud.interfaces.expose import Interface, expose

__all__ = ["BidsInterface"]

logger = logging.getLogger(__name__)

#: The only file type a DICOM stream reads.
_DICOM_TYPES = [".dcm"]


@dataclass
class _DicomStream:
    data: DataInterface
    data_stream: int
    entities: dict[str, Any]
    last_delivery: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        self.data.close()


@dataclass
class _RunStream:
    run: BidsRun
    next_index: int = 0
    last_delivery: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        pass


_Stream = _DicomStream | _RunStream


def read_incremental(
    data: DataInterface,
    stream_id: int,
    index: int | None,
    timeout: float,
    entities: dict[str, Any],
) -> BidsIncremental:
    """Volume ``index`` (the next one when None) of a DataInterface stream, as an incremental.

    The one place that knows how a stream's volume is read: ``getVolume`` assembles it for
    every layout the stream knows (a mosaic, an enhanced multi-frame file, the files of one
    temporal position of a per-slice series) as dcm2niix would, with its sidecar fields.
    """
    image = data.getVolume(stream_id, index, timeout)
    return nifti_to_incremental(image, image.sidecar, entities)


class BidsInterface(Interface):
    """Streams of BIDS incrementals (see the module docstring).

    Args:
        dataRemote: must be False here; a remote BidsInterface is made by
            :class:`~rtcloud.interfaces.client.ClientInterface` when the project server runs
            with ``--dataRemote`` (it then lives in the data service).
        allowedDirs: folders whose DICOMs and datasets may be read (``['*']``: any).
        scannerClockSkew: seconds the scanner's clock is ahead of this computer's clock.
        openNeuroCache: where OpenNeuro datasets are downloaded to (an
            :class:`~rtcloud.bids.openneuro.OpenNeuroCache`); one in the default cache
            folder when None, made when first needed.
        progress: called with a line of text as a download advances (the project server
            shows it on the page's log); downloads always log on the terminal.
    """

    def __init__(
        self,
        dataRemote: bool = False,
        allowedDirs: list[str] | None = None,
        scannerClockSkew: float = 0,
        *,
        openNeuroCache: Any = None,
        progress: Callable[[str], None] | None = None,
        sendIdentifying: bool = True,
    ) -> None:
        if dataRemote:
            raise StateError(
                "BidsInterface(dataRemote=True) is not created by hand: start the project "
                "server with --dataRemote and use ClientInterface().bidsInterface"
            )
        self.allowedDirs = list(allowedDirs) if allowedDirs else []
        self.scannerClockSkew = float(scannerClockSkew)
        self.sendIdentifying = bool(sendIdentifying)  # False: anonymize=False is refused
        self._paths = DataInterface(allowedDirs=self.allowedDirs, allowedFileTypes=["*"])
        self._openneuro = openNeuroCache
        self._progress = progress
        self._lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1

    # ------------------------------------------------------------ opening streams

    def _add(self, stream: _Stream) -> int:
        with self._lock:
            stream_id = self._next_id
            self._next_id += 1
            self._streams[stream_id] = stream
            oldest = sorted(self._streams)[: max(0, len(self._streams) - MAX_STREAMS)]
            evicted = [self._streams.pop(old) for old in oldest]
        for old_stream in evicted:  # a DICOM stream holds a folder watch
            old_stream.close()
        return stream_id

    @expose
    def initDicomBidsStream(
        self,
        dicomDir: str,
        dicomFilePattern: str,
        dicomMinSize: int,
        anonymize: bool = True,
        **entities: Any,
    ) -> int:
        """Stream the DICOM volumes of ``dicomDir`` as BIDS incrementals; return the stream id.

        ``dicomFilePattern`` and ``dicomMinSize`` are as in ``initScannerStream``
        (``001_000013_{TR:06d}.dcm``, or a glob). ``entities`` name the run: ``subject`` and
        ``task`` are required, ``suffix`` defaults to ``bold`` and ``datatype`` to ``func``;
        sidecar fields may be added too (e.g. ``RepetitionTime=2.0`` for files without it).
        Each volume is anonymized before it is converted, where the DICOMs are.
        """
        missing = [name for name in ("subject", "task") if not entities.get(name)]
        if missing:
            raise MissingMetadataError(
                f"initDicomBidsStream needs the entities {missing}, e.g. "
                "initDicomBidsStream(dicomDir, pattern, minSize, subject='01', task='faces')"
            )
        entities = {"suffix": "bold", "datatype": "func", **entities}
        if not self.allowedDirs:
            raise ValidationError(
                "BidsInterface: no allowed directories are set; pass allowedDirs=[...] "
                "(or the data service's -d option)"
            )
        data = DataInterface(
            allowedDirs=self.allowedDirs,
            allowedFileTypes=_DICOM_TYPES,
            scannerClockSkew=self.scannerClockSkew,
            sendIdentifying=self.sendIdentifying,
        )
        try:
            data_stream = data.initScannerStream(
                dicomDir, dicomFilePattern, dicomMinSize, anonymize=bool(anonymize)
            )
        except BaseException:
            data.close()
            raise
        return self._add(_DicomStream(data, data_stream, entities))

    @expose
    def initBidsStream(self, archivePath: str, **entities: Any) -> int:
        """Replay one run of the BIDS dataset at ``archivePath``; return the stream id.

        ``entities`` must pick exactly one run (e.g. ``subject='01', task='rest', run=1``).
        """
        root = self._paths._resolve(archivePath, "BIDS dataset folder")
        run = BidsArchive(root).getBidsRun(**entities)
        return self._add(_RunStream(run))

    def _cache(self) -> Any:
        if self._openneuro is None:
            from rtcloud.bids.openneuro import OpenNeuroCache

            self._openneuro = OpenNeuroCache()
        return self._openneuro

    @expose
    def initOpenNeuroStream(self, dsAccessionNumber: str, **entities: Any) -> int:
        """Download (once; later calls use the cache) and replay a run of an OpenNeuro
        dataset; return the stream id.

        ``entities`` must include ``subject`` and ``run`` (and ``task``/``session`` where the
        dataset has several). Only the files that run needs are downloaded. From a script
        talking to a project server, pass ``rpc_timeout=SECONDS`` when the first download of
        a run may take longer than two minutes.
        """
        missing = [name for name in ("subject", "run") if entities.get(name) in (None, "")]
        if missing:
            raise RequestError(
                f"initOpenNeuroStream needs the entities {missing}, e.g. "
                f"initOpenNeuroStream({dsAccessionNumber!r}, subject='01', run=1)"
            )
        cache = self._cache()
        path = cache.downloadData(dsAccessionNumber, progress=self._progress, **entities)
        query = {k: v for k, v in entities.items() if k not in ("suffix", "datatype")}
        run = BidsArchive(path).getBidsRun(**query)
        return self._add(_RunStream(run))

    # ------------------------------------------------------------ reading

    def _stream(self, streamId: int) -> _Stream:
        stream = self._streams.get(streamId)
        if stream is None:
            raise NoSuchStreamError(
                f"unknown BIDS stream id {streamId!r}; use the id an init*Stream call returned "
                f"(open streams: {sorted(self._streams)})"
            )
        return stream

    @expose
    def getIncremental(
        self, streamId: int, volIdx: int = -1, timeout: float = 5, demoStep: float | str = 0
    ) -> BidsIncremental | None:
        """The next volume of a stream (or volume ``volIdx`` when >= 0) as a BidsIncremental.

        For a DICOM stream, waits up to ``timeout`` seconds for the volume (then
        :class:`~rtcloud.errors.FileWaitTimeout`, a ``TimeoutError``). For a replayed
        dataset, returns None past the run's end. ``demoStep`` paces deliveries: at least
        that many seconds apart, or the run's RepetitionTime with ``"tr"``.
        """
        stream = self._stream(streamId)
        index = None if volIdx is None or int(volIdx) < 0 else int(volIdx)
        with stream.lock:
            if isinstance(stream, _DicomStream):
                incremental: BidsIncremental | None = read_incremental(
                    stream.data, stream.data_stream, index, float(timeout), stream.entities
                )
            else:
                position = stream.next_index if index is None else index
                if position >= stream.run.numIncrementals():
                    return None
                incremental = stream.run.getIncremental(position)
                stream.next_index = position + 1
            step = _step(demoStep, incremental)
            stream.last_delivery = _pace(step, stream.last_delivery)
        return incremental

    @expose(quick=True)
    def getNumVolumes(self, streamId: int) -> int:
        """Number of volumes of a replayed run (a DICOM stream's is not known in advance)."""
        stream = self._stream(streamId)
        if isinstance(stream, _DicomStream):
            raise NotImplementedError(
                "getNumVolumes: a DICOM stream's length is not known while the scan runs; "
                "loop until getIncremental times out, or use the number of TRs of your protocol"
            )
        return stream.run.numIncrementals()

    @expose(quick=True)
    def closeStream(self, streamId: int) -> None:
        """Close a stream (stop watching its folder)."""
        with self._lock:
            stream = self._streams.pop(streamId, None)
        if stream is None:
            raise ValidationError(f"unknown BIDS stream id {streamId!r}")
        stream.close()

    @expose(quick=True)
    def ping(self) -> float:
        """This computer's clock (``time.time()``): a cheap call for round-trip timing."""
        return time.time()

    @expose(quick=True)
    def getClockSkew(self, callerClockTime: float, roundTripTime: float) -> float:
        """Seconds the scanner clock is ahead of the caller's clock (as DataInterface's)."""
        now = time.time()
        return (now - (float(callerClockTime) + float(roundTripTime) / 2)) + self.scannerClockSkew

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every stream of this object."""
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.close()
        self._paths.close()

    def __enter__(self) -> BidsInterface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _step(demoStep: float | str, incremental: BidsIncremental | None) -> float:
    if isinstance(demoStep, str):
        if demoStep.strip().lower() != "tr":
            raise ValidationError(f"demoStep must be seconds or 'tr', got {demoStep!r}")
        return incremental.getRepetitionTime() if incremental is not None else 0.0
    return float(demoStep or 0)


def _pace(step: float, previous: float | None) -> float:
    """Wait so deliveries are at least ``step`` seconds apart; return this delivery's time."""
    now = time.monotonic()
    if step > 0 and previous is not None and previous + step > now:
        time.sleep(previous + step - now)
        now = time.monotonic()
    return now
