"""Keep volume-sized buffers in the process instead of returning them to the OS after each use.

Every volume passes through several buffers of its size in each process (the file's bytes,
the encoded DICOM, the RPC frame, the WebSocket frame). glibc's allocator serves blocks of a
few hundred KB from fresh ``mmap`` pages or trims them off the heap once freed, so the next
volume's buffers start on pages the kernel must fault in again: on a small VM that cost
about 0.3 ms per 457 KB copy, more than the copy itself.

:func:`tune_allocator` pins glibc's two thresholds at the values its own adaptive rule
reaches after seeing large blocks freed (``mmap`` only from 32 MiB, trim only beyond 64 MiB
free at the top of the heap). A block of 32 MiB or more (a large ``putFile``) still comes
from ``mmap`` and goes back to the OS when freed, so at most 64 MiB of freed memory stays
with a process.

Only rtcloud's own processes call it (``rtcloud serve``, ``data-service``,
``subject-service``): never an experiment script, whose process is the user's, and nothing
goes into the environment that the script inherits. Linux with glibc only: elsewhere, and
when the user has set either threshold (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``), it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Mapping

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024

# mallopt(3) parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
}


def _is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def tune_allocator(environ: Mapping[str, str] | None = None) -> bool:
    """Set the thresholds in this process (never in the environment).

    True when they were set; False on other platforms or C libraries, and when ``environ``
    (default ``os.environ``) already names either threshold (the user's choice stands).
    """
    env = os.environ if environ is None else environ
    if not _is_glibc() or any(name in env for name in _ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        return False
    return True
