"""Small helpers experiment scripts call through ``rtCommon.utils``.

String patterns (``stringPartialFormat``), round-trip timing (``calcAvgRoundTripTime``),
replay pacing (``demoDelay``), file helpers (``writeFile``, ``readFile``, ``findNewestFile``
...) and numpy-to-Python conversion (``npToPy``). Time-of-TR arithmetic lives in
:mod:`rtcloud.imaging.timing`; config loading in :mod:`rtcloud.config`.
"""

from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import logging
import math
import os
import re
import shutil
import string
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rtcloud.errors import ValidationError

__all__ = [
    "DebugLevels",
    "find",
    "flatten_1Ds",
    "getGitCodeId",
    "runCmdCheckOutput",
    "calcAvgRoundTripTime",
    "copyFileWildcard",
    "dateStr30",
    "deleteFilesFromList",
    "deleteFolder",
    "deleteFolderFiles",
    "demoDelay",
    "dtimeToSeconds",
    "fileCount",
    "findNewestFile",
    "installLoggers",
    "json_plain",
    "md5SumFile",
    "natural_sort_key",
    "npToPy",
    "readFile",
    "stringPartialFormat",
    "trimDictBytes",
    "writeFile",
]

_FORMATTER = string.Formatter()


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def stringPartialFormat(text: str, tag: str, val: Any) -> str:
    """Fill in only the ``{tag...}`` placeholders of a format string, keeping the others.

    >>> stringPartialFormat("001_{SCAN:06d}_{TR:06d}.dcm", "SCAN", 13)
    '001_000013_{TR:06d}.dcm'
    """
    out: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValidationError(
            f"stringPartialFormat: {text!r} is not a valid pattern: {exc}"
        ) from exc
    for literal, field, spec, conversion in parsed:
        out.append(_escape_braces(literal))
        if field is None:
            continue
        if field == tag:
            value = val
            if conversion:
                value = _FORMATTER.convert_field(value, conversion)
            out.append(_escape_braces(format(value, spec or "")))
        else:
            conv = f"!{conversion}" if conversion else ""
            fmt = f":{spec}" if spec else ""
            out.append("{" + field + conv + fmt + "}")
    return "".join(out)


def calcAvgRoundTripTime(pingFunc: Callable[[], Any], count: int = 10) -> float:
    """Mean wall time in seconds of ``count`` calls of ``pingFunc`` (``dataInterface.ping``)."""
    if count < 1:
        raise ValidationError("calcAvgRoundTripTime: count must be at least 1")
    total = 0.0
    for _ in range(count):
        start = time.perf_counter()
        pingFunc()
        total += time.perf_counter() - start
    return total / count


def dtimeToSeconds(dtime: _dt.time | _dt.timedelta) -> float:
    """Seconds since midnight of a ``datetime.time`` (or the seconds of a timedelta)."""
    if isinstance(dtime, _dt.timedelta):
        return dtime.total_seconds()
    return dtime.hour * 3600 + dtime.minute * 60 + dtime.second + dtime.microsecond / 1e6


def demoDelay(demoStep: float, prevEventTime: float | None = None) -> float:
    """Pace replayed data: wait so events are at least ``demoStep`` seconds apart.

    Returns the time (``time.time()``) of this event. With no previous event, or when
    ``demoStep`` seconds have already passed, it returns at once.
    """
    now = time.time()
    if demoStep and demoStep > 0 and prevEventTime is not None:
        due = prevEventTime + demoStep
        if due > now:
            time.sleep(due - now)
            now = time.time()
    return now


_DIGITS = re.compile(r"(\d+)")


def natural_sort_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``samp2`` before ``samp10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def findNewestFile(filepath: str, filepattern: str) -> str | None:
    """The newest (by modification time) file matching ``filepattern`` in ``filepath``, or None."""
    pattern = filepattern if os.path.isabs(filepattern) else os.path.join(filepath, filepattern)
    files = [f for f in glob.glob(pattern) if os.path.isfile(f)]
    if not files:
        return None
    return max(files, key=os.path.getmtime)


def copyFileWildcard(src: str, dst: str) -> None:
    """Copy the files matching the glob ``src`` into ``dst``; FileNotFoundError if none."""
    files = glob.glob(src)
    if not files:
        raise FileNotFoundError(f"copyFileWildcard: no file matches {src!r}")
    for name in files:
        shutil.copy(name, dst)


def fileCount(dirPath: str, filePattern: str) -> int:
    """Number of entries matching ``filePattern`` in ``dirPath``."""
    return len(glob.glob(os.path.join(dirPath, filePattern)))


def writeFile(filename: str, data: bytes | str, binary: bool = True) -> None:
    """Write ``data`` to ``filename``, creating missing parent folders."""
    path = Path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = bytes(data)
    with open(path, "wb" if binary else "w") as fh:
        if binary:
            fh.write(payload)
        else:
            fh.write(payload.decode("utf-8"))


def readFile(filename: str, binary: bool = True) -> bytes | str:
    """Read a whole file as bytes (or text with ``binary=False``)."""
    path = Path(filename)
    return path.read_bytes() if binary else path.read_text(encoding="utf-8")


def deleteFilesFromList(fileList: Iterable[str]) -> None:
    """Delete each file in the list (missing files are ignored)."""
    for name in fileList:
        try:
            os.remove(name)
        except FileNotFoundError:
            pass


def deleteFolder(folder: str) -> None:
    """Delete a folder and everything in it."""
    shutil.rmtree(folder)


def deleteFolderFiles(folder: str, recursive: bool = True) -> None:
    """Delete the files in a folder (and its subfolders when ``recursive``), keeping folders."""
    pattern = os.path.join(folder, "**") if recursive else os.path.join(folder, "*")
    for name in glob.glob(pattern, recursive=recursive):
        if os.path.isfile(name):
            os.remove(name)


def md5SumFile(filename: str) -> str:
    """Hex MD5 of a file's content (a checksum for comparing copies, not for security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(filename, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dateStr30(timeval: time.struct_time) -> str:
    """A date-time string such as ``20240131T120000``."""
    return time.strftime("%Y%m%dT%H%M%S", timeval)


#: Deepest nesting :func:`json_plain` takes.
JSON_MAX_DEPTH = 32


def json_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as something JSON holds: NaN and infinities -> None, arrays and numpy
    numbers -> lists and numbers, tuples and sets -> lists, anything else -> its text.

    For feedback going to files and web pages. ValidationError when nested too deeply.
    """
    if depth > JSON_MAX_DEPTH:
        raise ValidationError(f"value nested more than {JSON_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_plain(v, depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return json_plain(tolist(), depth + 1)
    return str(value)


def npToPy(data: Any) -> Any:
    """Turn numpy scalars inside dicts, lists, tuples and sets into Python values."""
    if isinstance(data, dict):
        return {key: npToPy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [npToPy(item) for item in data]
    if isinstance(data, tuple):
        return tuple(npToPy(item) for item in data)
    if isinstance(data, set):
        return {npToPy(item) for item in data}
    item = getattr(data, "item", None)
    if item is not None and type(data).__module__ == "numpy" and getattr(data, "ndim", 1) == 0:
        return item()
    return data


def trimDictBytes(msg: dict[str, Any], trimSize: int = 64) -> dict[str, Any]:
    """A copy of ``msg`` without the str/bytes values longer than ``trimSize`` (for logs)."""
    return {
        key: value
        for key, value in msg.items()
        if not (isinstance(value, (str, bytes)) and len(value) > trimSize)
    }


class DebugLevels:
    """RT-Cloud's extra logging levels (L1 most important ... L10 least)."""

    L1 = 19
    L2 = 18
    L3 = 17
    L4 = 16
    L5 = 15
    L6 = 14
    L7 = 13
    L8 = 12
    L9 = 11
    L10 = 10


def installLoggers(consoleLevel: int, fileLevel: int, filename: str | None = None) -> None:
    """Send log records to the console (and a file): for scripts, not for library code."""
    root = logging.getLogger()
    root.setLevel(min(consoleLevel, fileLevel))
    tagged = [h for h in root.handlers if getattr(h, "_rtcloud_handler", False)]
    if tagged:
        return
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(consoleLevel)
    console.setFormatter(fmt)
    console._rtcloud_handler = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if filename:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(filename)
        handler.setLevel(fileLevel)
        handler.setFormatter(fmt)
        handler._rtcloud_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)


# ------------------------------------------------------------------ RT-Cloud's array and
# process helpers (older projects call them)


def find(A: Any) -> Any:
    """The flat row-major indices of ``A``'s nonzero elements, listed in MATLAB's order
    (down the columns first): how RT-Cloud's projects index a MATLAB-made ROI mask."""
    import numpy as np

    array = np.asarray(A)
    in_matlab_order = np.flatnonzero(array.ravel(order="F"))
    position = np.unravel_index(in_matlab_order, array.shape, order="F")
    return np.ravel_multi_index(position, array.shape, order="C")


def flatten_1Ds(M: Any) -> Any:
    """``M`` without its length-1 axes (a 1xN or Nx1 MATLAB array as a 1-D array)."""
    if 1 in M.shape:
        M = M.reshape([n for n in M.shape if n > 1])
    return M


def runCmdCheckOutput(cmd: list[str], outputRegex: str) -> bool:
    """Run ``cmd``, print its output (stderr merged), and say whether a line matched
    ``outputRegex`` (case-insensitive)."""
    import subprocess

    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    found = False
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        print(line)
        found = found or re.search(outputRegex, line, re.IGNORECASE) is not None
    return found


_code_id: str | None = None


def getGitCodeId() -> str:
    """``"branch:commit"`` of the git checkout the program runs in (for a results log);
    ``"rtcloud:<version>"`` when it is not in one."""
    global _code_id
    if _code_id is None:
        import subprocess

        try:
            branch, commit = (
                subprocess.run(
                    ["git", *args], capture_output=True, text=True, check=True, timeout=10
                ).stdout.strip()
                for args in (
                    ["symbolic-ref", "--short", "-q", "HEAD"],
                    ["rev-parse", "--short", "HEAD"],
                )
            )
            _code_id = f"{branch}:{commit}"
        except (OSError, subprocess.SubprocessError):
            from rtcloud import __version__

            _code_id = f"rtcloud:{__version__}"
    return _code_id
