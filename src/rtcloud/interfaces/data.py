"""DataInterface: scanner files and DICOM volumes, confined to allowed folders and file types.

This object does the work where it lives: in the experiment script (local mode), in the
project server, or in the scanner-side data service. Every path it is given is resolved to
its real path (``..`` and symlinks followed) and must then lie inside one of the allowed
directories, and every file must have an allowed type; otherwise it raises
:class:`~rtcloud.errors.ValidationError` naming the path and what is allowed. ``'*'`` as the
first allowed directory (or type) allows everything.

Streams (``initScannerStream`` / ``getImageData``) hand over each volume as soon as its file
is complete, with no settle delay, and anonymize it before it leaves this object when asked.
The parse that found a volume's file complete is the one handed over: the file is read and
parsed once per volume (again only if it changed after that parse).
Several streams and watches may be open at once; waiting on one does not block the others.
"""

from __future__ import annotations

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

from rtcloud.atomic_files import SpooledFile, write_atomically
from rtcloud.errors import (
    FileWaitTimeout,
    InvalidDicomError,
    StateError,
    ValidationError,
)
from rtcloud.imaging.anonymize import anonymize_dicom
from rtcloud.imaging.dicom import read_dicom_bytes
from rtcloud.imaging.dicom_prepare import finish_volume, prepare_header
from rtcloud.interfaces.expose import Interface, expose
from rtcloud.rpc.codec import DicomBytes
from rtcloud.utils import natural_sort_key
from rtcloud.watcher.watcher import FileWatcher

__all__ = ["DataInterface"]

logger = logging.getLogger(__name__)

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
    next_index: int = 0
    last_delivery: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Watch:
    directory: Path
    pattern: str
    min_file_size: int
    demo_step: float
    watcher: FileWatcher
    last_delivery: float | None = None


class DataInterface(Interface):
    """Read scanner files and stream DICOM volumes, within allowed folders and file types.

    Args:
        dataRemote: must be False here; remote data interfaces are made by
            :class:`~rtcloud.interfaces.client.ClientInterface` when a project server runs
            with ``--dataRemote``.
        allowedDirs: folders whose files may be read or written (``['*']``: any).
        allowedFileTypes: file extensions that may be read or written (``['*']``: any).
        scannerClockSkew: seconds the scanner's clock is ahead of this computer's clock.
        encode_volumes: for a data service or the project server, whose volumes only
            leave as DICOM bytes: the header of an anonymized volume written in place is
            anonymized and encoded while its pixel data is still being written, and the
            volume returned as :class:`~rtcloud.rpc.codec.DicomBytes` (which arrives as a
            dataset).
    """

    def __init__(
        self,
        dataRemote: bool = False,
        allowedDirs: list[str] | None = None,
        allowedFileTypes: list[str] | None = None,
        scannerClockSkew: float = 0,
        *,
        encode_volumes: bool = False,
    ) -> None:
        if dataRemote:
            raise StateError(
                "DataInterface(dataRemote=True) is not created by hand: start the project "
                "server with --dataRemote and use ClientInterface().dataInterface"
            )
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
        self._encode_volumes = bool(encode_volumes)

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
                raise ValidationError(
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
        watcher = FileWatcher(directory, pattern, int(minFileSize or 0), keep_parsed=True)
        with self._lock:
            old, self._watch = (
                self._watch,
                _Watch(directory, pattern, int(minFileSize or 0), float(demoStep or 0), watcher),
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
                raise ValidationError(
                    f"watchFile: {name!r} is not in the watched folder {str(watch.directory)!r}; "
                    "call initWatch on its folder first"
                )
        else:
            path = self._check_file(watch.directory / name)
        found = watch.watcher.wait_for_file(path, float(timeout))
        parsed = watch.watcher.take_parsed(found)  # the bytes the completeness check read
        data = parsed.data if parsed is not None else found.read_bytes()
        watch.last_delivery = _pace(watch.demo_step, watch.last_delivery)
        return data

    # ----------------------------------------------------------------- streams

    @expose
    def initScannerStream(
        self,
        imgDir: str,
        filePattern: str,
        minFileSize: int,
        anonymize: bool = True,
        demoStep: float = 0,
    ) -> int:
        """Open a stream of DICOM volumes from ``imgDir``; return its stream id.

        ``filePattern`` is either a format pattern naming volume ``TR`` (e.g.
        ``001_000013_{TR:06d}.dcm``: volume i is that file with TR=i) or a glob (e.g.
        ``samp*.dcm``: volume i is the i-th matching file in natural name order).
        With ``anonymize`` every volume is anonymized before it leaves this object.
        """
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
        head_start = prepare_header if anonymize and self._encode_volumes else None
        watcher = FileWatcher(
            directory,
            watch_glob,
            int(minFileSize or 0),
            keep_parsed=True,
            prepare_header=head_start,
        )
        with self._lock:
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._streams[stream_id] = _Stream(
                stream_id,
                directory,
                pattern,
                by_name,
                int(minFileSize or 0),
                bool(anonymize),
                float(demoStep or 0),
                watcher,
            )
        return stream_id

    def _stream(self, streamId: int) -> _Stream:
        stream = self._streams.get(streamId)
        if stream is None:
            raise ValidationError(
                f"unknown stream id {streamId!r}; use the id returned by initScannerStream "
                f"(open streams: {sorted(self._streams)})"
            )
        return stream

    @expose
    def getImageData(
        self, streamId: int, imageIndex: int | None = None, timeout: float = 5
    ) -> Any:
        """Wait for volume ``imageIndex`` of a stream (the next one when None); return it.

        Returns a ``pydicom`` dataset, anonymized if the stream asked for it. The volume is
        handed over as soon as its file is complete. Raises
        :class:`~rtcloud.errors.FileWaitTimeout` (a ``TimeoutError`` and a ``RequestError``)
        naming the file when it is not complete within ``timeout`` seconds.
        """
        stream = self._stream(streamId)
        if timeout is None or timeout <= 0:
            raise ValidationError(f"getImageData: timeout must be > 0 seconds, got {timeout!r}")
        index = stream.next_index if imageIndex is None else int(imageIndex)
        if index < 0:
            raise ValidationError(f"getImageData: imageIndex must be >= 0, got {index}")
        started = time.monotonic()
        deadline = started + float(timeout)
        complete = stream.watcher.dicom_completeness
        while True:
            remaining = deadline - time.monotonic()
            try:
                if stream.by_name:
                    path = stream.watcher.wait_for_file(
                        stream.directory / stream.pattern.format(TR=index), max(remaining, 0.0)
                    )
                else:
                    path = stream.watcher.wait_until(
                        lambda: _nth_complete(stream.watcher, index, complete),
                        max(remaining, 0.0),
                        f"volume {index} (file #{index + 1} matching {stream.pattern!r} "
                        f"in {str(stream.directory)!r})",
                    )
            except FileWaitTimeout as exc:
                waited = time.monotonic() - started
                raise FileWaitTimeout(
                    f"getImageData: volume {index} of stream {streamId} was not complete "
                    f"after {waited:.2f} s: {exc}",
                    path=exc.path,
                    waited=waited,
                ) from None
            # the completeness check parsed the file: take that parse rather than reading
            # and parsing the file again (None when the file changed since)
            parsed = stream.watcher.take_parsed(path)
            prepared = stream.watcher.take_prepared(path)
            if parsed is not None:
                if prepared is not None:  # header anonymized and encoded while being written
                    encoded = finish_volume(prepared, parsed.data)
                    if encoded is not None:
                        self._delivered(stream, index)
                        return DicomBytes(encoded)
                dataset = parsed.dataset
                break
            try:
                dataset = read_dicom_bytes(path.read_bytes())
                break
            except InvalidDicomError:
                # Complete by size but not parseable yet (e.g. rewritten in place): retry.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        self._delivered(stream, index)
        if stream.anonymize:
            anonymize_dicom(dataset)
        return dataset

    @staticmethod
    def _delivered(stream: _Stream, index: int) -> None:
        with stream.lock:
            stream.next_index = index + 1
        stream.last_delivery = _pace(stream.demo_step, stream.last_delivery)

    # ----------------------------------------------------------------- files

    @expose
    def getFile(self, filename: str) -> bytes:
        """Return the bytes of ``filename`` (an absolute path in an allowed folder)."""
        if self._resolve(filename).is_dir():
            raise IsADirectoryError(f"getFile: {filename!r} is a directory, not a file")
        path = self._check_file(filename)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"getFile: file {filename!r} does not exist") from None

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
        return self._check_file(newest).read_bytes()

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


def _nth_complete(watcher: FileWatcher, index: int, complete: Any) -> Path | None:
    files = watcher.list_matching()
    if len(files) <= index:
        return None
    path = files[index]
    return path if complete(path) else None


def _pace(demo_step: float, previous: float | None) -> float:
    """Wait so deliveries are at least ``demo_step`` seconds apart; return this delivery time."""
    now = time.monotonic()
    if demo_step > 0 and previous is not None and previous + demo_step > now:
        time.sleep(previous + demo_step - now)
        now = time.monotonic()
    return now
