"""Replaying a DICOM series into a folder at TR pace, the way a scanner writes it.

Volume i is written at ``start + start_delay + i * tr`` (an absolute schedule, so there is no
drift). A series written one file per slice (``files_per_volume`` files make a volume) has
its files spread evenly over each TR, as a scanner exports slices while it acquires them.
Modes:

- ``pieces``: the file is created under its final name and written in chunks with short
  pauses, as a scanner exporting to a share does (readers can see it half written);
- ``rename``: written under a hidden temporary name in the same folder, then renamed into
  place (complete the moment it appears);
- ``copy``: written in one go.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rtcloud.errors import ValidationError
from rtcloud.utils import natural_sort_key

__all__ = ["MODES", "due_offset", "files_per_volume", "replay_series", "series_files"]

logger = logging.getLogger(__name__)

MODES = ("pieces", "rename", "copy")


def series_files(source: str | Path | Sequence[str | Path], pattern: str = "*.dcm") -> list[Path]:
    """The files of a series: a list as given, or a folder's matching files in name order."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise ValidationError(f"replay source {str(folder)!r} is not a folder")
        files = [p for p in folder.glob(pattern) if p.is_file()]
        return sorted(files, key=lambda p: natural_sort_key(p.name))
    return [Path(p) for p in source]


def due_offset(index: int, tr: float, files_per_volume: int = 1) -> float:
    """Seconds after the start at which file ``index`` is written: volume by volume at TR
    pace, the files of one volume spread evenly over its TR."""
    volume, part = divmod(index, files_per_volume)
    return volume * tr + part * tr / files_per_volume


def files_per_volume(path: str | Path, following: Sequence[str | Path] = ()) -> int:
    """How many files of this series make a volume: 1, or for a series written one file per
    slice, the slices its first file declares (ImagesInAcquisition); without that, how many
    of the ``following`` files (the series in order) share the first one's temporal
    position."""
    from rtcloud.imaging.dicom import read_dicom_file
    from rtcloud.imaging.frames import classic_view
    from rtcloud.imaging.volume import layout_of

    ds = classic_view(read_dicom_file(path))
    if layout_of(ds) != "slices":
        return 1
    try:
        declared = int(ds.get("ImagesInAcquisition") or 0)
    except (TypeError, ValueError):
        declared = 0
    if declared > 0:
        return declared
    first = ds.get("TemporalPositionIdentifier")
    count = 1
    for other in following[1:1024]:
        if (
            first is None
            or classic_view(read_dicom_file(other)).get("TemporalPositionIdentifier") != first
        ):
            break
        count += 1
    return count


def _write_pieces(data: bytes, target: Path, chunk_size: int, pause: float) -> float:
    """Write ``data`` in pieces; return the time just before the last piece was written."""
    last = time.time()
    with open(target, "wb") as fh:
        for offset in range(0, len(data), chunk_size):
            last = time.time()
            fh.write(data[offset : offset + chunk_size])
            fh.flush()
            if pause > 0 and offset + chunk_size < len(data):
                time.sleep(pause)
    return last


def _write_rename(data: bytes, target: Path) -> float:
    """Write under a temporary name and rename; return the time just before the rename."""
    temp = target.with_name(f".{target.name}.partial")
    temp.write_bytes(data)
    last = time.time()
    os.replace(temp, target)
    return last


def replay_series(
    source: str | Path | Sequence[str | Path],
    dest_dir: str | Path,
    *,
    tr: float = 2.0,
    mode: str = "pieces",
    chunk_size: int = 64 * 1024,
    piece_pause: float = 0.002,
    start_delay: float = 0.0,
    rename: Callable[[int, Path], str] | None = None,
    stop_event: threading.Event | None = None,
    on_volume: Callable[[int, Path, float], None] | None = None,
    files_per_volume: int = 1,
) -> int:
    """Write the series into ``dest_dir`` at TR pace; return the number of files written.

    ``rename(i, source_path)`` may give each file another name. ``on_volume(i, path, t)`` is
    called after file i is complete, with ``t`` the ``time.time()`` taken just before its
    last byte was written (or its rename): a reader can never have it earlier, so latencies
    measured from ``t`` are never negative (they include that last write).
    """
    if mode not in MODES:
        raise ValidationError(f"replay mode must be one of {MODES}, got {mode!r}")
    if files_per_volume < 1:
        raise ValidationError(f"files_per_volume must be >= 1, got {files_per_volume}")
    if tr < 0:
        raise ValidationError(f"replay TR must be >= 0 seconds, got {tr}")
    files = series_files(source)
    if not files:
        raise ValidationError(f"no DICOM files to replay in {source!r}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    stop = stop_event or threading.Event()
    begin = time.monotonic() + start_delay
    written = 0
    for index, path in enumerate(files):
        due = begin + due_offset(index, tr, files_per_volume)
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        data = path.read_bytes()
        target = dest / (rename(index, path) if rename else path.name)
        if mode == "pieces":
            finished = _write_pieces(data, target, chunk_size, piece_pause)
        elif mode == "rename":
            finished = _write_rename(data, target)
        else:
            finished = time.time()
            target.write_bytes(data)
        written += 1
        logger.debug("replayed volume %d -> %s", index, target)
        if on_volume is not None:
            on_volume(index, target, finished)
    return written
