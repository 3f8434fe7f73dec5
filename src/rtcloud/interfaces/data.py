"""DataInterface: scanner files and DICOM volumes, confined to allowed folders and file types.

This object does the work where it lives: in the experiment script (local mode), in the
project server, or in the scanner-side data service. Every path it is given is resolved to
its real path (``..`` and symlinks followed) and must then lie inside one of the allowed
directories, and every file must have an allowed type; otherwise it raises
:class:`~rtcloud.errors.ValidationError` naming the path and what is allowed. ``'*'`` as the
first allowed directory (or type) allows everything.

Streams (``initScannerStream`` / ``getImageData``) hand over each file as soon as it is
complete, with no settle delay, and anonymize it before it leaves this object when asked.
The watcher's completeness check hands each complete file it parsed to the stream's
:class:`~rtcloud.imaging.volume.VolumeReader`, and ``getImageData`` takes that parse: a file
is read and parsed once (again only if it changed after that parse). ``getVolume`` gives a
volume as a NIfTI image whatever the layout (mosaic, enhanced multi-frame, one file per slice).
Several streams and watches may be open at once; waiting on one does not block the others.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import re
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from rtcloud.atomic_files import SpooledFile, write_atomically
from rtcloud.errors import (
    FileWaitTimeout,
    InvalidDicomError,
    InvalidRequestError,
    NotInWatchedFolderError,
    StateError,
    ValidationError,
)
from rtcloud.imaging.anonymize import anonymize_dicom
from rtcloud.imaging.dicom import looks_like_dicom, read_dicom_bytes, write_dicom_bytes
from rtcloud.imaging.volume import (
    DicomObject,
    VolumeImage,
    VolumeReader,
    VolumeSlices,
    volume_image,
)
from rtcloud.interfaces.expose import Interface, expose
from rtcloud.utils import natural_sort_key
from rtcloud.watcher.filters import file_key
from rtcloud.watcher.watcher import FileWatcher

__all__ = ["DataInterface"]

#: File names a DICOM may have, whatever its first bytes (files without the preamble).
_DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})

logger = logging.getLogger(__name__)

#: Streams kept open at once (each watches its folder): opening one more closes the oldest.
#: A data service serves run after run, and the server opens a run's stream again on every
#: reconnect: without a bound each left a watch behind until the system ran out of them.
MAX_STREAMS = 8

_GLOB_CHARS = re.compile(r"[*?\[]")
_FORMAT_FIELD = re.compile(r"\{([^{}:!]*)[^{}]*\}")


def _normalize_types(types: list[str] | tuple[str, ...] | None) -> list[str]:
    if not types:
        return []
    if types[0] == "*":
        return ["*"]
    out = []
    for entry in types:
        entry = entry.strip().lower()
        if not entry:
            continue
        out.append(entry if entry.startswith(".") else "." + entry)
    return out


#: Longest file name pattern accepted (file systems allow 255 bytes per name).
MAX_PATTERN_LENGTH = 255
#: Largest width or precision in a pattern's ``{TR:...}`` field.
MAX_FIELD_WIDTH = 32


def _check_format_fields(pattern: str) -> None:
    """Refuse a pattern whose names could be huge: too long, wide fields, nested fields.

    ``'{TR:0999999999d}'.format(TR=0)`` is a name of a billion characters; it is refused
    before anything is formatted.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValidationError(
            f"initScannerStream: the file pattern is {len(pattern)} characters long; a file "
            f"name has at most {MAX_PATTERN_LENGTH}"
        )
    try:
        fields = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValidationError(
            f"initScannerStream: pattern {pattern!r} cannot be formatted: {exc}"
        ) from exc
    for _, name, spec, _ in fields:
        if name is None or not spec:
            continue
        if "{" in spec:
            raise ValidationError(
                f"initScannerStream: pattern {pattern!r} takes a field's format from another "
                "field; write the width itself, e.g. {TR:06d}"
            )
        widest = max((int(n) for n in re.findall(r"\d+", spec)), default=0)
        if widest > MAX_FIELD_WIDTH:
            raise ValidationError(
                f"initScannerStream: pattern {pattern!r} asks for a field {widest} characters "
                f"wide; scanners write at most a few digits (the limit is {MAX_FIELD_WIDTH})"
            )


def _pattern_to_glob(pattern: str) -> str:
    """``001_{SCAN:06d}_{TR:06d}.dcm`` -> ``001_*_*.dcm`` (for choosing which files to watch)."""
    return _FORMAT_FIELD.sub("*", pattern).replace("{{", "{").replace("}}", "}")


@dataclass
class _Stream:
    stream_id: int
    directory: Path
    pattern: str
    by_name: bool
    min_file_size: int
    anonymize: bool
    demo_step: float
    watcher: FileWatcher
    reader: _Reader
    next_index: int = 0
    next_volume: int = 0
    last_delivery: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Watch:
    directory: Path
    pattern: str
    min_file_size: int
    demo_step: float
    watcher: FileWatcher
    reader: _Reader
    last_delivery: float | None = None


class _Reader:
    """A :class:`VolumeReader` shared by the threads of one stream (the watcher's hook and
    the callers), and the file-reading side of taking a dataset from it."""

    def __init__(self, slices_per_volume: int | None = None) -> None:
        self.volumes = VolumeReader(slices_per_volume)
        self.lock = threading.Lock()

    def add(self, obj: DicomObject) -> None:
        with self.lock:
            self.volumes.add(obj)

    def take(self, path: Path, deadline: float) -> DicomObject:
        """The complete object of ``path``: the parse the watcher handed over, else a read."""
        while True:
            try:
                key = file_key(os.stat(path))
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{str(path)!r} disappeared after it was complete"
                ) from None
            with self.lock:
                obj = self.volumes.take(str(path), key)
            if obj is not None:
                return obj
            data = path.read_bytes()
            try:
                return DicomObject(str(path), key, data, read_dicom_bytes(data))
            except InvalidDicomError:
                # complete by size but not parseable yet (e.g. rewritten in place): retry
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def peek(self, path: Path, deadline: float) -> DicomObject:
        """Like :meth:`take`, but the object stays for a later taker (read it only)."""
        key = file_key(os.stat(path))
        with self.lock:
            obj = self.volumes.get(str(path), key)
        if obj is not None:
            return obj
        obj = self.take(path, deadline)
        self.add(obj)
        return obj


class DataInterface(Interface):
    """Read scanner files and stream DICOM volumes, within allowed folders and file types.

    Args:
        dataRemote: must be False here; remote data interfaces are made by
            :class:`~rtcloud.interfaces.client.ClientInterface` when a project server runs
            with ``--dataRemote``.
        allowedDirs: folders whose files may be read or written (``['*']``: any).
        allowedFileTypes: file extensions that may be read or written (``['*']``: any).
        scannerClockSkew: seconds the scanner's clock is ahead of this computer's clock.
    """

    def __init__(
        self,
        dataRemote: bool = False,
        allowedDirs: list[str] | None = None,
        allowedFileTypes: list[str] | None = None,
        scannerClockSkew: float = 0,
        *,
        sendIdentifying: bool = True,
    ) -> None:
        if dataRemote:
            raise StateError(
                "DataInterface(dataRemote=True) is not created by hand: start the project "
                "server with --dataRemote and use ClientInterface().dataInterface"
            )
        #: False on a data service (unless started with --send-identifying-dicom): every
        #: DICOM this object hands out is anonymized first, files as well as streams
        self.sendIdentifying = bool(sendIdentifying)
        self.allowedDirs = list(allowedDirs) if allowedDirs else []
        self.allowedFileTypes = _normalize_types(allowedFileTypes)
        self.scannerClockSkew = float(scannerClockSkew)
        self._allow_all_dirs = bool(self.allowedDirs) and self.allowedDirs[0] == "*"
        self._real_dirs = [
            os.path.normcase(os.path.realpath(os.path.expanduser(d)))
            for d in self.allowedDirs
            if d != "*"
        ]
        self._lock = threading.Lock()
        self._watch: _Watch | None = None
        self._streams: dict[int, _Stream] = {}
        self._next_stream_id = 1
        self._times = VolumeTimes()

    # ----------------------------------------------------------------- security checks

    def _resolve(self, path: str | os.PathLike[str], what: str = "path") -> Path:
        """Real path of ``path`` if it lies inside an allowed directory, else ValidationError."""
        if not self.allowedDirs:
            raise ValidationError(
                "DataInterface: no allowed directories are set; pass allowedDirs=[...] "
                "(or the data service's -d option)"
            )
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise ValidationError(
                f"DataInterface: {what} must be a non-empty string, got {path!r}"
            )
        text = os.path.expanduser(text)
        if not os.path.isabs(text):
            if not self._allow_all_dirs:
                raise ValidationError(
                    f"{what} {text!r} is relative; use a full (absolute) path inside one of "
                    f"the allowed directories {self.allowedDirs}"
                )
            text = os.path.abspath(text)
        real = os.path.realpath(text)
        if self._allow_all_dirs:
            return Path(real)
        norm = os.path.normcase(real)
        for allowed in self._real_dirs:
            if norm == allowed or norm.startswith(allowed.rstrip(os.sep) + os.sep):
                return Path(real)
        shown = f"{text!r}" if real == text else f"{text!r} (real path {real!r})"
        raise ValidationError(
            f"Path {shown} is not within the allowed directories {self.allowedDirs}. Use a "
            "full path inside one of them, or allow its folder (data service option -d, "
            "or allowedDirs=[...])"
        )

    def _check_type(self, name: str | os.PathLike[str]) -> None:
        if not self.allowedFileTypes:
            raise ValidationError(
                "DataInterface: no allowed file types are set; pass allowedFileTypes=[...] "
                "(or the data service's -f option)"
            )
        if self.allowedFileTypes[0] == "*":
            return
        base = os.path.basename(os.fspath(name)).lower()
        if any(base.endswith(ext) for ext in self.allowedFileTypes):
            return
        raise ValidationError(
            f"File type of {os.fspath(name)!r} is not in the allowed file types "
            f"{self.allowedFileTypes}. Allow it with the data service's -f option "
            "(or allowedFileTypes=[...])"
        )

    def _check_file(self, path: str | os.PathLike[str], what: str = "file") -> Path:
        """Resolve and check a file path: allowed folder, and allowed type by name and target."""
        real = self._resolve(path, what)
        self._check_type(path)
        if os.path.basename(os.fspath(path)) != real.name:
            self._check_type(real)  # a symlink with an allowed name to a forbidden file
        return real

    def _type_allowed(self, name: str | os.PathLike[str]) -> bool:
        try:
            self._check_type(name)
        except ValidationError:
            return False
        return True

    def _admits(self, path: Path) -> bool:
        """Whether a file a watch or stream found may be read: its real path (through any
        symbolic link) inside the allowed folders. Its folder was checked when the watch
        began, so only a symbolic link can lead elsewhere (one system call for the others:
        this runs at every change of every file)."""
        return not os.path.islink(path) or self._inside(str(path))

    def _inside(self, path: str) -> bool:
        try:
            self._resolve(path)
        except ValidationError:
            return False
        return True

    def _glob_root(self, pattern: str) -> str:
        parts = Path(pattern).parts
        root: list[str] = []
        for part in parts:
            if _GLOB_CHARS.search(part):
                break
            root.append(part)
        if len(root) == len(parts):
            root = root[:-1]
        return os.path.join(*root) if root else "."

    def _check_pattern(self, pattern: str, what: str) -> str:
        text = os.path.expanduser(os.fspath(pattern))
        if not os.path.isabs(text):
            if not self._allow_all_dirs:
                raise InvalidRequestError(
                    f"{what} {text!r} is relative; use a full (absolute) path pattern inside "
                    f"one of the allowed directories {self.allowedDirs}"
                )
            text = os.path.abspath(text)
        self._resolve(self._glob_root(text), what)
        return text

    # ----------------------------------------------------------------- watching

    @expose
    def initWatch(self, dir: str, filePattern: str, minFileSize: int, demoStep: float = 0) -> None:
        """Watch ``dir`` for files matching ``filePattern`` (a glob such as ``samp*.dcm``).

        After this, :meth:`watchFile` waits for a file in that folder; a bare file name means
        a file in the watched folder. A pattern with ``{TR...}`` fields watches every file the
        pattern could name. Files smaller than ``minFileSize`` bytes are never delivered.
        ``demoStep`` (seconds) paces the delivery of files that already exist.
        """
        directory = self._resolve(dir, "watch directory")
        pattern = _pattern_to_glob(os.path.basename(filePattern))
        if not pattern.endswith("*"):
            self._check_type(pattern)
        reader = _Reader()
        watcher = FileWatcher(
            directory, pattern, int(minFileSize or 0), on_complete=reader.add, admit=self._admits
        )
        with self._lock:
            old, self._watch = (
                self._watch,
                _Watch(
                    directory,
                    pattern,
                    int(minFileSize or 0),
                    float(demoStep or 0),
                    watcher,
                    reader,
                ),
            )
        if old is not None:
            old.watcher.close()

    @expose
    def watchFile(self, filename: str, timeout: float = 5) -> bytes:
        """Wait up to ``timeout`` seconds for ``filename`` to be complete; return its bytes.

        Raises :class:`~rtcloud.errors.FileWaitTimeout` (a ``TimeoutError``) naming the file
        and the time waited.
        """
        watch = self._watch
        if watch is None:
            raise StateError("watchFile: call initWatch(dir, filePattern, minFileSize) first")
        name = os.fspath(filename)
        if os.path.dirname(name):
            path = self._check_file(name)
            if os.path.normcase(str(path.parent)) != os.path.normcase(str(watch.directory)):
                raise NotInWatchedFolderError(
                    f"watchFile: {name!r} is not in the watched folder {str(watch.directory)!r}; "
                    "call initWatch on its folder first"
                )
        else:
            path = self._check_file(watch.directory / name)
        found = watch.watcher.wait_for_file(path, float(timeout))
        key = file_key(os.stat(found))
        with watch.reader.lock:
            parsed = watch.reader.volumes.take(str(found), key)  # what the check read
        if parsed is not None:
            data = self._outgoing(found, parsed.data, parsed.dataset)
        else:
            data = self._outgoing(found, found.read_bytes())
        watch.last_delivery = _pace(watch.demo_step, watch.last_delivery)
        return data

    def _outgoing(self, path: Path, data: bytes, dataset: Dataset | None = None) -> bytes:
        """A file's bytes as they may leave: a DICOM anonymized unless identifying data may
        be sent; a DICOM that cannot be read (so not anonymized) is not sent at all.
        ``dataset``: the file already parsed, when the caller has it."""
        if self.sendIdentifying:
            return data
        if dataset is not None:
            return write_dicom_bytes(anonymize_dicom(dataset))
        if not (
            path.suffix.lower() in _DICOM_SUFFIXES
            or looks_like_dicom(data)
            or data[:2] == b"\x08\x00"  # a raw data set starting with group 0008
        ):
            return data
        try:
            dataset = read_dicom_bytes(data)
        except InvalidDicomError as exc:
            raise InvalidDicomError(
                f"{str(path)!r} looks like a DICOM file but cannot be read ({exc}), so it "
                "cannot be anonymized and is not sent; this data service sends DICOM only "
                "anonymized (start it with --send-identifying-dicom to send files as they are)"
            ) from exc
        return write_dicom_bytes(anonymize_dicom(dataset))

    # ----------------------------------------------------------------- streams

    @expose
    def initScannerStream(
        self,
        imgDir: str,
        filePattern: str,
        minFileSize: int,
        anonymize: bool = True,
        demoStep: float = 0,
        slicesPerVolume: int | None = None,
    ) -> int:
        """Open a stream of DICOM files from ``imgDir``; return its stream id.

        ``filePattern`` is either a format pattern naming file ``TR`` (e.g.
        ``001_000013_{TR:06d}.dcm``: image i is that file with TR=i) or a glob (e.g.
        ``samp*.dcm``: image i is the i-th matching file in natural name order).
        With ``anonymize`` every image is anonymized before it leaves this object.
        ``slicesPerVolume`` tells :meth:`getVolume` how many files make a volume of a
        series written one file per slice, when their headers do not say it.
        """
        if not anonymize and not self.sendIdentifying:
            raise ValidationError(
                "initScannerStream(anonymize=False): this data service sends DICOM images "
                "only anonymized; start it with --send-identifying-dicom where identifying "
                "data may leave the scanner computer"
            )
        directory = self._resolve(imgDir, "image directory")
        pattern = os.path.basename(os.fspath(filePattern))
        by_name = "{" in pattern
        if by_name:
            fields = {m.group(1) for m in _FORMAT_FIELD.finditer(pattern)}
            if "TR" not in fields:
                raise ValidationError(
                    f"initScannerStream: pattern {pattern!r} has no {{TR}} field; name the "
                    "volume number, e.g. 'scan_{TR:06d}.dcm', or use a glob such as 'scan*.dcm'"
                )
            others = fields - {"TR"}
            if others:
                raise ValidationError(
                    f"initScannerStream: pattern {pattern!r} has unfilled fields "
                    f"{sorted(others)}; "
                    "fill them first, e.g. utils.stringPartialFormat(pattern, 'SCAN', 13)"
                )
            _check_format_fields(pattern)
            try:
                pattern.format(TR=0)
            except (ValueError, IndexError, KeyError) as exc:
                raise ValidationError(
                    f"initScannerStream: pattern {pattern!r} cannot be formatted: {exc}"
                ) from exc
            self._check_type(pattern.format(TR=0))
            watch_glob = _pattern_to_glob(pattern)
        else:
            watch_glob = pattern
            if not pattern.endswith("*"):
                self._check_type(pattern)
        if slicesPerVolume is not None and int(slicesPerVolume) <= 0:
            raise ValidationError(
                f"initScannerStream: slicesPerVolume must be > 0, got {slicesPerVolume!r}"
            )
        reader = _Reader(int(slicesPerVolume) if slicesPerVolume else None)
        watcher = FileWatcher(
            directory,
            watch_glob,
            int(minFileSize or 0),
            on_complete=reader.add,
            admit=self._admits,
        )
        with self._lock:
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            evicted = [
                self._streams.pop(old)
                for old in sorted(self._streams)[: max(0, len(self._streams) + 1 - MAX_STREAMS)]
            ]
            self._streams[stream_id] = _Stream(
                stream_id,
                directory,
                pattern,
                by_name,
                int(minFileSize or 0),
                bool(anonymize),
                float(demoStep or 0),
                watcher,
                reader,
            )
        for old_stream in evicted:  # each holds a folder watch (threads, an inotify handle)
            logger.info(
                "closed stream %d: only the newest %d stay open", old_stream.stream_id, MAX_STREAMS
            )
            old_stream.watcher.close()
        return stream_id

    def _stream(self, streamId: int) -> _Stream:
        stream = self._streams.get(streamId)
        if stream is None:
            closed = isinstance(streamId, int) and 0 < streamId < self._next_stream_id
            raise ValidationError(
                f"stream {streamId!r} was closed: only the newest {MAX_STREAMS} streams stay "
                "open; call initScannerStream again"
                if closed
                else f"unknown stream id {streamId!r}; use the id returned by "
                f"initScannerStream (open streams: {sorted(self._streams)})"
            )
        return stream

    @expose
    def getImageData(
        self, streamId: int, imageIndex: int | None = None, timeout: float = 5
    ) -> Any:
        """Wait for image ``imageIndex`` of a stream (the next one when None); return it.

        Returns the ``pydicom`` dataset of that file (RT-Cloud's one dataset per file: a
        volume for mosaic and enhanced series, a slice for per-slice series), anonymized if
        the stream asked for it. It is handed over as soon as its file is complete. Raises
        :class:`~rtcloud.errors.FileWaitTimeout` (a ``TimeoutError`` and a ``RequestError``)
        naming the file when it is not complete within ``timeout`` seconds.
        """
        stream = self._stream(streamId)
        index = _index(stream.next_index if imageIndex is None else imageIndex, "imageIndex")
        started = time.monotonic()
        asked = time.time()
        deadline = started + _timeout(timeout, "getImageData")
        path = self._wait_for_file(stream, index, deadline, "getImageData")
        found = time.time()
        dataset = stream.reader.take(path, deadline).dataset
        with stream.lock:
            stream.next_index = index + 1
        stream.last_delivery = _pace(stream.demo_step, stream.last_delivery)
        if stream.anonymize:
            anonymize_dicom(dataset)
        self._times.note(streamId, index, path, asked, found)
        return dataset

    @expose
    def getVolume(
        self, streamId: int, volumeIndex: int | None = None, timeout: float = 5
    ) -> VolumeImage:
        """Wait for volume ``volumeIndex`` of a stream (the next one when None); return it
        as a NIfTI image.

        The image is a ``nibabel.Nifti1Image`` (a :class:`~rtcloud.imaging.nifti.VolumeImage`)
        whose affine maps voxels to RAS millimetres, voxel for voxel as dcm2niix writes it,
        whatever the layout: a Siemens mosaic or an enhanced multi-frame file (one file per
        volume: volume i is the stream's file i), or one file per slice (the slices of
        volume i are those of its i-th temporal position). Its ``sidecar`` attribute holds
        the BIDS sidecar fields (RepetitionTime, EchoTime, SliceTiming, ...).

        Raises :class:`~rtcloud.errors.FileWaitTimeout` after ``timeout`` seconds, naming the
        volume and, for a per-slice series, the slices that arrived.
        """
        stream = self._stream(streamId)
        index = _index(stream.next_volume if volumeIndex is None else volumeIndex, "volumeIndex")
        started = time.monotonic()
        asked = time.time()
        deadline = started + _timeout(timeout, "getVolume")
        layout = stream.reader.volumes.layout
        if layout is None:  # the stream's first file tells the layout
            # (in name order: a named stream may start at any number; Siemens's start at 1)
            first = self._wait_for_file(stream, 0, deadline, "getVolume", volume=index)
            stream.reader.peek(first, deadline)
            layout = stream.reader.volumes.layout
        image: VolumeImage | None = None
        if layout == "slices":
            slices = self._wait_for_slices(stream, index, started, deadline)
            found, last = time.time(), Path(slices.names[-1])
            with stream.reader.lock:
                image = stream.reader.volumes.assemble(slices)  # made as slices arrived
            if image is None:  # what the slices left is gone: read them again
                paths = [Path(name) for name in slices.names]
                image = volume_image([stream.reader.peek(p, deadline).dataset for p in paths])
        else:
            last = self._wait_for_file(stream, index, deadline, "getVolume")
            found = time.time()
            image = volume_image([stream.reader.take(last, deadline).dataset])
        with stream.lock:
            stream.next_volume = index + 1
        stream.last_delivery = _pace(stream.demo_step, stream.last_delivery)
        self._times.note(streamId, index, last, asked, found)
        return image

    def _wait_for_file(
        self, stream: _Stream, index: int, deadline: float, what: str, volume: int | None = None
    ) -> Path:
        """Wait until file ``index`` of a stream is complete; return its path.

        With ``volume`` (the volume asked for, named in a timeout's message), ``index`` counts
        the stream's files in name order even when its pattern names them by number.
        """
        started = time.monotonic()
        try:
            if stream.by_name and volume is None:
                return stream.watcher.wait_for_file(
                    stream.directory / stream.pattern.format(TR=index),
                    max(deadline - started, 0.0),
                )
            complete = stream.watcher.dicom_completeness
            return stream.watcher.wait_until(
                lambda: _nth_complete(stream.watcher, index, complete),
                max(deadline - started, 0.0),
                f"file #{index + 1} matching {stream.pattern!r} in {str(stream.directory)!r}",
            )
        except FileWaitTimeout as exc:
            waited = time.monotonic() - started
            raise FileWaitTimeout(
                f"{what}: volume {index if volume is None else volume} of stream "
                f"{stream.stream_id} was not complete "
                f"after {waited:.2f} s: {exc}",
                path=exc.path,
                waited=waited,
            ) from None

    def _wait_for_slices(
        self, stream: _Stream, index: int, started: float, deadline: float
    ) -> VolumeSlices:
        """Wait until every slice of per-slice volume ``index`` is complete."""
        watcher = stream.watcher
        reader = stream.reader

        def complete() -> VolumeSlices | None:
            for name in watcher.unknown_files(reader.volumes.knows):
                watcher.dicom_completeness(name)  # a complete file goes to the reader
            with reader.lock:
                slices = reader.volumes.slices(index)
            return slices if slices.complete else None

        try:
            return watcher.wait_until(complete, max(deadline - time.monotonic(), 0.0), "")
        except FileWaitTimeout:
            with reader.lock:
                slices = reader.volumes.slices(index)
            waited = time.monotonic() - started
            hint = ""
            if slices.expected is None:
                hint = (
                    "; the headers do not say how many slices a volume has: pass "
                    "slicesPerVolume to initScannerStream"
                )
            raise FileWaitTimeout(
                f"getVolume: volume {index} of stream {stream.stream_id} was not complete "
                f"after {waited:.2f} s: {slices.describe()}{hint}",
                path=None,
                waited=waited,
            ) from None

    # ----------------------------------------------------------------- files

    @expose
    def getFile(self, filename: str) -> bytes:
        """Return the bytes of ``filename`` (an absolute path in an allowed folder)."""
        if self._resolve(filename).is_dir():
            raise IsADirectoryError(f"getFile: {filename!r} is a directory, not a file")
        path = self._check_file(filename)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"getFile: file {filename!r} does not exist") from None
        return self._outgoing(path, data)

    @expose
    def getNewestFile(self, filepattern: str) -> bytes:
        """Return the bytes of the most recently modified file matching ``filepattern``."""
        pattern = self._check_pattern(filepattern, "file pattern")
        candidates = [
            f
            for f in glob.glob(pattern)
            if os.path.isfile(f) and self._type_allowed(f) and self._inside(f)
        ]
        if not candidates:
            raise FileNotFoundError(f"getNewestFile: no allowed file matches {filepattern!r}")
        newest = max(candidates, key=lambda f: os.stat(f).st_mtime_ns)
        path = self._check_file(newest)
        return self._outgoing(path, path.read_bytes())

    @expose
    def putFile(
        self, filename: str, data: bytes | str | int | float, compress: bool = False
    ) -> None:
        """Write ``data`` to ``filename`` (creating folders), atomically.

        ``str`` is written as UTF-8, numbers as their text. Readers polling for the file
        never see it half written. ``compress`` is accepted for RT-Cloud compatibility.
        """
        if isinstance(data, SpooledFile):  # already written as it arrived (spool_part)
            try:
                path = self._with_folder(self._check_file(filename))
            except BaseException:
                data.discard()
                raise
            data.commit(path)
            return
        path = self._check_file(filename)
        payload: bytes | bytearray | memoryview
        if isinstance(data, str):
            payload = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = data  # written as it is: a large one is not copied first
        elif isinstance(data, (int, float)) and not isinstance(data, bool):
            payload = str(data).encode("utf-8")
        else:
            raise ValidationError(
                f"putFile: data must be bytes, str or a number, got {type(data).__name__}"
            )
        write_atomically(self._with_folder(path), payload)

    def _with_folder(self, path: Path) -> Path:
        """A checked file path, its folder created (and still inside the allowed ones)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._resolve(path.parent)  # mkdir must not have followed a link out
        return path

    def spool_part(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], part: object, size: int
    ) -> SpooledFile | None:
        """Where the bytes of a large ``putFile`` go as they arrive (a service's spool hook).

        ``args``/``kwargs`` are the call's, decoded ahead, with ``part`` standing for the
        argument about to arrive. For ``putFile``'s data into an allowed file, a temporary
        file in the target's folder (renamed into place by :meth:`putFile`); otherwise None
        (the bytes arrive in memory, and ``putFile`` reports any error as usual).
        """
        if method != "putFile":
            return None
        filename = args[0] if args else kwargs.get("filename")
        data = args[1] if len(args) > 1 else kwargs.get("data")
        if data is not part or not isinstance(filename, str):
            return None
        try:
            return SpooledFile(self._with_folder(self._check_file(filename)).parent, size)
        except (OSError, ValidationError):  # putFile itself raises the same error, typed
            return None

    @expose
    def listFiles(self, filepattern: str) -> list[str]:
        """Files matching ``filepattern`` (absolute; ``**`` recurses) of allowed types."""
        pattern = self._check_pattern(filepattern, "file pattern")
        base = os.path.basename(pattern)
        if base and not _GLOB_CHARS.search(base) and not base.endswith("*"):
            self._check_type(base)
        extension = os.path.splitext(base)[1]
        if extension and not _GLOB_CHARS.search(extension):
            # "*.dcm" where .dcm is not allowed: say so (as RT-Cloud did), not an empty list
            self._check_type(base)
        found = [
            f
            for f in glob.glob(pattern, recursive=True)
            if os.path.isfile(f) and self._type_allowed(f) and self._inside(f)
        ]
        return sorted(found, key=natural_sort_key)

    @expose
    def listDirs(self, dirpattern: str) -> list[str]:
        """Folders matching ``dirpattern`` (absolute) inside the allowed directories."""
        pattern = self._check_pattern(dirpattern, "folder pattern")
        found = [f for f in glob.glob(pattern) if os.path.isdir(f) and self._inside(f)]
        return sorted(found, key=natural_sort_key)

    @expose(quick=True)
    def getAllowedFileTypes(self) -> list[str]:
        """The allowed file extensions, e.g. ``['.dcm', '.txt']``, or ``['*']``."""
        return list(self.allowedFileTypes)

    @expose(quick=True)
    def ping(self) -> float:
        """This computer's clock (``time.time()``): a cheap call for round-trip timing."""
        return time.time()

    @expose(quick=True)
    def getVolumeTimes(self, streamId: int, imageIndex: int) -> dict[str, float | None]:
        """When volume ``imageIndex`` of a stream was complete and when it was handed over.

        ``{"complete": t, "asked": t, "sent": t, "clock": now}``: when its file was
        complete, when ``getImageData`` asked for it, when it was handed over, all
        ``time.time()`` of the computer this interface runs on (``clock`` lets a caller
        compare clocks); None for a volume not (or no longer: the last 2000 are kept) handed
        over. The project server uses it for the Quality tab's latency breakdown.
        """
        complete, asked, sent = self._times.get(int(streamId), int(imageIndex))
        return {"complete": complete, "asked": asked, "sent": sent, "clock": time.time()}

    @expose(quick=True)
    def getClockSkew(self, callerClockTime: float, roundTripTime: float) -> float:
        """Seconds the scanner clock is ahead of the caller's clock.

        ``callerClockTime`` is the caller's ``time.time()`` when it sent the call and
        ``roundTripTime`` the measured round trip in seconds.
        """
        now = time.time()
        return (now - (float(callerClockTime) + float(roundTripTime) / 2)) + self.scannerClockSkew

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop every watch and stream of this object."""
        with self._lock:
            watchers = [s.watcher for s in self._streams.values()]
            if self._watch is not None:
                watchers.append(self._watch.watcher)
            self._streams.clear()
            self._watch = None
        for watcher in watchers:
            watcher.close()

    def __enter__(self) -> DataInterface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VolumeTimes:
    """The last ``keep`` volumes' completion and hand-over times, by (stream, index)."""

    def __init__(self, keep: int = 2000) -> None:
        self.keep = keep
        self._times: collections.OrderedDict[tuple[int, int], tuple[float, float, float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def note(self, stream_id: int, index: int, path: Path, asked: float, found: float) -> None:
        """Volume ``index`` (``path``), asked for at ``asked`` and seen complete at ``found``,
        is handed over now.

        A file that was complete before anyone asked was complete when it was last written
        (or renamed into place: the inode's change time, on POSIX).
        """
        try:
            st = path.stat()
            written = max(st.st_mtime, st.st_ctime) if os.name != "nt" else st.st_mtime
        except OSError:
            written = found
        with self._lock:
            self._times[(stream_id, index)] = (min(found, written), asked, time.time())
            while len(self._times) > self.keep:
                self._times.popitem(last=False)

    def get(self, stream_id: int, index: int) -> tuple[float | None, float | None, float | None]:
        """(complete, asked, sent) of a volume, or Nones."""
        with self._lock:
            times = self._times.get((stream_id, index))
        return times if times is not None else (None, None, None)


def _nth_complete(watcher: FileWatcher, index: int, complete: Any) -> Path | None:
    files = watcher.list_matching()
    if len(files) <= index:
        return None
    path = files[index]
    return path if complete(path) else None


def _index(value: Any, name: str) -> int:
    index = int(value)
    if index < 0:
        raise ValidationError(f"{name} must be >= 0, got {index}")
    return index


def _timeout(value: Any, what: str) -> float:
    if value is None or value <= 0:
        raise InvalidRequestError(f"{what}: timeout must be > 0 seconds, got {value!r}")
    return float(value)


def _pace(demo_step: float, previous: float | None) -> float:
    """Wait so deliveries are at least ``demo_step`` seconds apart; return this delivery time."""
    now = time.monotonic()
    if demo_step > 0 and previous is not None and previous + demo_step > now:
        time.sleep(previous + demo_step - now)
        now = time.monotonic()
    return now
