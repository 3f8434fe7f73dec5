"""TR timing from DICOM headers: acquisition time, repetition time, time to the next TR.

All times are in seconds. ``clockSkew`` is how many seconds the scanner's clock is ahead of
this computer's (as ``DataInterface.getClockSkew`` measures it). Unlike RT-Cloud, replaying
old data never fails: the time to the next TR is the phase of "now" on the scanner's TR grid,
computed modulo TR, whatever the date of the data.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from rtcloud.errors import StateError, ValidationError

__all__ = [
    "dicomTimeToNextTr",
    "getDicomAcquisitionTime",
    "getDicomFileName",
    "getDicomRepetitionTime",
    "getTimeToNextTR",
]


def getDicomAcquisitionTime(dicomImg: Any) -> dt.time | None:
    """The AcquisitionTime of a dataset (``HHMMSS.ffffff``) as a ``datetime.time``, or None."""
    value = getattr(dicomImg, "AcquisitionTime", None) if dicomImg is not None else None
    if not value:
        return None
    text = str(value).strip()
    try:
        hours, minutes = int(text[0:2]), int(text[2:4])
        seconds = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    whole = int(seconds)
    micro = int(round((seconds - whole) * 1e6))
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    try:
        return dt.time(hours, minutes, min(whole, 59), micro)
    except ValueError:
        return None


def getDicomRepetitionTime(dicomImg: Any) -> float | None:
    """RepetitionTime in seconds (DICOM stores milliseconds), or None."""
    value = getattr(dicomImg, "RepetitionTime", None) if dicomImg is not None else None
    if value in (None, ""):
        return None
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        return None


def _seconds_of_day(t: dt.time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def getTimeToNextTR(
    lastTrTime: dt.time, trRepSec: float, nowTime: dt.time | float, clockSkew: float
) -> float:
    """Seconds from ``nowTime`` (this computer's clock) to the next TR boundary.

    ``lastTrTime`` is a TR's acquisition time on the scanner clock, ``trRepSec`` the TR.
    ``nowTime`` is a ``datetime.time`` or seconds since midnight. The result is in (0, TR].
    """
    if not isinstance(lastTrTime, dt.time):
        raise StateError(
            f"getTimeToNextTR: lastTrTime must be a datetime.time, got {lastTrTime!r}"
        )
    if not trRepSec or trRepSec <= 0:
        raise ValidationError(f"getTimeToNextTR: TR must be > 0 seconds, got {trRepSec!r}")
    now = _seconds_of_day(nowTime) if isinstance(nowTime, dt.time) else float(nowTime)
    scanner_now = now + clockSkew
    elapsed = scanner_now - _seconds_of_day(lastTrTime)
    remaining = trRepSec - math.fmod(elapsed, trRepSec)
    if remaining <= 0:
        remaining += trRepSec
    if remaining > trRepSec:
        remaining -= trRepSec
    return remaining if remaining > 0 else trRepSec


def dicomTimeToNextTr(
    dicomImg: Any, clockSkew: float, now: float | dt.time | None = None
) -> float:
    """Seconds until the next TR, from a volume's AcquisitionTime and RepetitionTime.

    ``now`` defaults to the current local time. Raises StateError when the volume has no
    usable AcquisitionTime or RepetitionTime.
    """
    acquired = getDicomAcquisitionTime(dicomImg)
    if acquired is None:
        raise StateError("dicomTimeToNextTr: the DICOM image has no usable AcquisitionTime")
    tr = getDicomRepetitionTime(dicomImg)
    if tr is None:
        raise StateError("dicomTimeToNextTr: the DICOM image has no RepetitionTime")
    if now is None:
        local = time.localtime()
        now = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec + (time.time() % 1)
    return getTimeToNextTR(acquired, tr, now, clockSkew)


def getDicomFileName(cfg: Any, scanNum: int, fileNum: int) -> str:
    """Path of volume ``fileNum`` of scan ``scanNum``, from ``cfg.dicomDir`` and its pattern."""
    pattern = str(cfg.dicomNamePattern)
    if "{TR" in pattern:
        name = pattern.format(SCAN=scanNum, TR=fileNum)
    else:
        name = pattern.format(str(scanNum).zfill(6), str(fileNum).zfill(6))
    import os

    return os.path.join(str(cfg.dicomDir), name)
