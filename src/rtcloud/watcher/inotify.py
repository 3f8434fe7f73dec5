"""Linux inotify for one folder, read by one thread that calls back at once.

watchdog's Linux observer hands each event through three threads (the inotify reader, the
emitter, the dispatcher) before a handler sees it: about 0.45 ms after a rename on a small
VM. Reading the inotify descriptor in the thread that calls the watcher back takes that to
about 0.06 ms, and a volume's latency is made of such fractions of a millisecond.

:class:`FolderEvents` reports, for each change to an entry of the folder, the entry's name
and what the change means for a file being written (see :data:`WRITING`, :data:`SETTLED`,
:data:`OTHER`); a lost-events overflow, or the folder itself going away, is reported with
no name, so that the caller re-checks everything. Only libc's inotify calls are used,
through ``ctypes``; :func:`available` says whether they exist. Other systems, and Linux
when inotify refuses (its instance or watch limits), use watchdog instead (see
:mod:`rtcloud.watcher.watcher`).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable

__all__ = ["OTHER", "SETTLED", "WRITING", "FolderEvents", "available"]

logger = logging.getLogger(__name__)

#: The file is being written (created or modified).
WRITING = 1
#: The file was closed after writing, or moved into or out of place.
SETTLED = 2
#: Anything else that may change what the folder holds (a deletion).
OTHER = 3

_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_ISDIR = 0x40000000
_IN_CLOEXEC = 0o2000000

_WATCH_MASK = (
    _IN_MODIFY
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
)
_WRITING_MASK = _IN_CREATE | _IN_MODIFY
_SETTLED_MASK = _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO
_FOLDER_GONE = _IN_Q_OVERFLOW | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED

#: struct inotify_event: wd, mask, cookie, len; then len bytes of NUL-padded name.
_EVENT = struct.Struct("iIII")
_READ_SIZE = 64 * 1024

#: What the callback receives: (name or None for "re-check everything", kind).
Callback = Callable[[str | None, int], None]

_libc: ctypes.CDLL | None = None


def _load() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def available() -> bool:
    """Whether this system has inotify (Linux with a C library that exposes it)."""
    return _load() is not None


def parse_events(buffer: bytes) -> list[tuple[str | None, int]]:
    """The (name, kind) changes in a buffer read from an inotify descriptor, in order.

    Events on sub-folders are left out; an overflow or the folder's own removal gives
    ``(None, OTHER)``.
    """
    changes: list[tuple[str | None, int]] = []
    pos = 0
    end = len(buffer)
    while pos + _EVENT.size <= end:
        _wd, mask, _cookie, length = _EVENT.unpack_from(buffer, pos)
        raw = buffer[pos + _EVENT.size : pos + _EVENT.size + length]
        pos += _EVENT.size + length
        if mask & _FOLDER_GONE:
            changes.append((None, OTHER))
            continue
        if mask & _IN_ISDIR:
            continue
        name = os.fsdecode(raw.rstrip(b"\0"))
        if not name:
            continue
        if mask & _SETTLED_MASK:
            changes.append((name, SETTLED))
        elif mask & _WRITING_MASK:
            changes.append((name, WRITING))
        else:
            changes.append((name, OTHER))
    return changes


class FolderEvents:
    """Changes to the entries of ``directory``, passed to ``callback`` from one thread.

    Raises :class:`OSError` when inotify cannot watch the folder (no inotify, too many
    instances or watches); the caller then watches another way.
    """

    def __init__(self, directory: str, callback: Callback) -> None:
        libc = _load()
        if libc is None:
            raise OSError(errno.ENOSYS, "inotify is not available on this system")
        fd = libc.inotify_init1(_IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        if libc.inotify_add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise OSError(code, f"inotify_add_watch({directory!r}): {os.strerror(code)}")
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._callback = callback
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="rtcloud-inotify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                ready, _, _ = select.select([self._fd, self._wake_r], [], [])
                if self._stopping or self._fd not in ready:
                    continue
                try:
                    buffer = os.read(self._fd, _READ_SIZE)
                except InterruptedError:
                    continue
                for name, kind in parse_events(buffer):
                    try:
                        self._callback(name, kind)
                    except Exception:  # a faulty callback must not end the watch
                        logger.exception("file event handler failed")
        except OSError:
            if not self._stopping:
                logger.exception("reading file events failed; the periodic check goes on")
        finally:
            os.close(self._fd)
            os.close(self._wake_r)

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading and release the descriptors (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        os.close(self._wake_w)  # only here, so that the write above never hits a reused fd
