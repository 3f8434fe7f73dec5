"""Which files a watch counts, and when a file is complete (pure; no threads or I/O loops).

A file is complete when it is a regular file of at least ``min_file_size`` bytes and, for a
DICOM file (``.dcm``/``.ima``, or a name without extension holding ``DICM`` at byte 128),
its pixel data is all there. Other files are complete once their writer has closed them
(where the operating system reports closes: Linux) or, elsewhere, once their size and time
have not changed for a moment; the watcher supplies that fact as ``still_open``.

Deciding that a DICOM file is complete takes a full parse of its bytes. Three things keep
that to one full parse per delivered file:

- The parse that finds a file complete is handed to ``on_complete`` (as a
  :class:`~rtcloud.imaging.volume.DicomObject` whose key is :func:`file_key` of the file
  when it was read), so that whoever waited for the file can take the dataset instead of
  reading and parsing the file again.
- A file whose bytes do not yet hold the tag of its pixel data (see
  :func:`~rtcloud.imaging.completeness.may_hold_pixel_data`) is not parsed again until they do;
  each check searches only the bytes added since the last one. Any other incomplete file is
  not parsed again while its bytes stay the same (one write can bring several events).
- A file found cut short inside its pixel data is not parsed again until it has grown to the
  size its header asks for, as long as its beginning (everything up to the pixel data) is
  byte for byte the same: a check in between costs a ``stat`` and a read of that beginning.

So a file written in pieces is parsed twice: once (partly) when its pixel data has begun,
and once in full when its last byte is there. For uncompressed pixel data that ends the
file, that last read takes the beginning (compared with the one remembered) and then the
pixel data value as an object of its own, which the dataset keeps as its ``PixelData``: a
large volume is not copied to be split off the bytes read.

Each of these shortcuts only ever answers "not complete", and only for bytes whose parse
would say so: they never make a file complete early, and never hold back a complete one.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rtcloud.imaging.completeness import (
    may_hold_pixel_data,
    probe_dicom_bytes,
    probe_dicom_parts,
)
from rtcloud.imaging.volume import DicomObject
from rtcloud.utils import natural_sort_key

__all__ = [
    "CompletenessCheck",
    "FileKey",
    "OnComplete",
    "file_key",
    "is_dicom_name",
    "make_completeness_check",
    "matches",
    "sort_paths",
]

CompletenessCheck = Callable[[Path], bool]

#: Receives each DICOM object a check found complete (the file unchanged while read).
OnComplete = Callable[[DicomObject], None]

#: Identity and state of a file: (device, inode, size, modification time in ns).
FileKey = tuple[int, int, int, int]

DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")

#: Incomplete files a check remembers (a few are written at a time).
MAX_PARTIAL_HINTS = 16


def file_key(st: os.stat_result) -> FileKey:
    """The :data:`FileKey` of a ``stat`` result."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def matches(name: str, pattern: str) -> bool:
    """Glob match of a file name, case-sensitive on every OS (scanner names are exact)."""
    return fnmatch.fnmatchcase(name, pattern)


def sort_paths(paths: list[Path]) -> list[Path]:
    """Natural name order: ``vol2`` before ``vol10``."""
    return sorted(paths, key=lambda p: natural_sort_key(p.name))


def is_dicom_name(path: Path) -> bool | None:
    """True/False from the extension; None when the name says nothing (no extension)."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    return None if not suffix or suffix[1:].isdigit() else False


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


#: Up to this size, the bytes of an incomplete file are remembered whole, to recognize them.
MAX_REMEMBERED_BYTES = 4 * 1024 * 1024

#: On a first look at a file up to this size, search it for the pixel data tag before parsing
#: (a file just begun); bigger files are parsed at once (most likely complete: no search).
FIRST_LOOK_SEARCH = 64 * 1024


@dataclass(frozen=True)
class _Partial:
    """A DICOM file found incomplete: its bytes, or for a file cut short inside its pixel
    data, its bytes up to the pixel data value and the size it needs."""

    identity: tuple[int, int]  # (device, inode)
    prefix: bytes  # all its bytes (needed None), or those up to the pixel data value
    needed: int | None  # the size it must reach before it can be complete
    no_pixel_tag: bool = False  # its bytes cannot hold pixel data (see may_hold_pixel_data)
    pixel_value: bool = False  # prefix ends where native pixel data, the last element, begins


def _read_prefix(path: Path, size: int) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def _read_in_two(
    path: Path, head: bytes, size: int
) -> tuple[os.stat_result, bytes, os.stat_result] | None:
    """The rest of a file of ``size`` bytes that begins with ``head``, read as one object of
    its own (no copy to split it off), with the file's state before and after; None when
    the file does not begin so, or is not that size when read."""
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            if before.st_size != size or fh.read(len(head)) != head:
                return None
            rest = fh.read(size - len(head))
            after = os.fstat(fh.fileno())
    except OSError:
        return None
    if len(head) + len(rest) != size or after.st_size != size:
        return None
    return before, rest, after


def _dicom_check(on_complete: OnComplete | None) -> Callable[[Path, os.stat_result], bool]:
    """Completeness of a DICOM file (one parse; see the module docstring)."""
    # path -> what the last parse of a cut-short file found. Plain dict operations only, so
    # several threads may share the check: a race costs at most one extra parse.
    partial: dict[str, _Partial] = {}

    def _remember(name: str, hint: _Partial) -> None:
        if len(partial) >= MAX_PARTIAL_HINTS and name not in partial:
            partial.clear()
        partial[name] = hint

    def check(path: Path, st: os.stat_result) -> bool:
        name = str(path)
        known = partial.get(name)
        if known is not None and known.identity != (st.st_dev, st.st_ino):
            partial.pop(name, None)
            known = None
        if (
            known is not None
            and known.needed is not None
            and len(known.prefix) <= st.st_size < known.needed
            and _read_prefix(path, len(known.prefix)) == known.prefix
        ):
            return False  # same beginning, still shorter than its pixel data asks for
        if (
            known is not None
            and known.pixel_value
            and known.needed is not None
            and st.st_size == known.needed
        ):
            whole = _read_in_two(path, known.prefix, known.needed)
            if whole is not None:  # the same beginning, and the pixel data all there
                before, pixels, after = whole
                probe = probe_dicom_parts(known.prefix, pixels)
                if probe.dataset is not None:
                    partial.pop(name, None)
                    key = file_key(after)
                    if on_complete is not None and file_key(before) == key:
                        on_complete(DicomObject(name, key, known.prefix, probe.dataset, pixels))
                    return True
        try:
            with open(path, "rb") as fh:
                before = os.fstat(fh.fileno())
                data = fh.read()
                after = os.fstat(fh.fileno())
        except OSError:
            return False
        identity = (after.st_dev, after.st_ino)
        if known is not None and known.needed is None:
            if data == known.prefix:
                return False  # the very bytes found incomplete before (another event)
            if (
                known.no_pixel_tag
                and len(data) <= MAX_REMEMBERED_BYTES
                and data.startswith(known.prefix)
                and not may_hold_pixel_data(data, len(known.prefix))
            ):
                # grown, but the pixel data has still not begun
                _remember(name, _Partial(identity, data, None, no_pixel_tag=True))
                return False
        if known is None and len(data) <= FIRST_LOOK_SEARCH and not may_hold_pixel_data(data):
            # first look at a file just begun: no parse while its pixel data has not begun
            _remember(name, _Partial(identity, data, None, no_pixel_tag=True))
            return False
        probe = probe_dicom_bytes(data)
        if probe.dataset is None:
            if probe.needed_size is not None and probe.prefix_size is not None:
                prefix = data[: probe.prefix_size]
                _remember(
                    name,
                    _Partial(
                        identity,
                        prefix,
                        probe.needed_size,
                        pixel_value=probe.prefix_is_pixel_value,
                    ),
                )
            elif len(data) <= MAX_REMEMBERED_BYTES:
                _remember(name, _Partial(identity, data, None, not may_hold_pixel_data(data)))
            else:
                partial.pop(name, None)
            return False
        partial.pop(name, None)
        key = file_key(after)
        if on_complete is not None and file_key(before) == key and len(data) == after.st_size:
            on_complete(DicomObject(name, key, data, probe.dataset))
        return True

    return check


def make_completeness_check(
    min_file_size: int = 0,
    dicom: bool | None = None,
    still_open: Callable[[Path], bool] | None = None,
    on_complete: OnComplete | None = None,
) -> CompletenessCheck:
    """A predicate telling whether a file is complete (see the module docstring).

    ``dicom``: True/False to treat every file as DICOM or not, None to decide by name (and
    content for names without extension). ``on_complete`` receives each DICOM object found
    complete, when the file did not change while it was read.
    """
    minimum = max(int(min_file_size or 0), 1)
    dicom_complete = _dicom_check(on_complete)

    def check(path: Path) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size < minimum:
            return False
        is_dicom = dicom if dicom is not None else is_dicom_name(path)
        if is_dicom is None:
            is_dicom = _has_dicom_magic(path)
        if is_dicom:
            return dicom_complete(path, st)
        return not (still_open is not None and still_open(path))

    return check
