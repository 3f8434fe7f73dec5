"""Which files a watch counts, and when a file is complete (pure; no threads or I/O loops).

A file is complete when it is a regular file of at least ``min_file_size`` bytes and, for a
DICOM file (``.dcm``/``.ima``, or a name without extension holding ``DICM`` at byte 128),
its pixel data is all there. Other files are complete once their writer has closed them
(where the operating system reports closes) or at once otherwise; the watcher supplies that
fact as ``still_open``.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from pathlib import Path

from rtcloud.imaging.dicom import file_is_complete_dicom
from rtcloud.utils import natural_sort_key

__all__ = [
    "CompletenessCheck",
    "is_dicom_name",
    "make_completeness_check",
    "matches",
    "sort_paths",
]

CompletenessCheck = Callable[[Path], bool]

DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")


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


def make_completeness_check(
    min_file_size: int = 0,
    dicom: bool | None = None,
    still_open: Callable[[Path], bool] | None = None,
) -> CompletenessCheck:
    """A predicate telling whether a file is complete (see the module docstring)."""
    minimum = max(int(min_file_size or 0), 1)

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
            return file_is_complete_dicom(path)
        return not (still_open is not None and still_open(path))

    return check
