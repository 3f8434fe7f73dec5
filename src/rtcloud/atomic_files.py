"""Writing a file so that readers see the old file or the whole new one, never half of it.

:func:`write_atomically` writes to a temporary name in the target's folder and renames it
into place. When that rename replaces a large file, the operating system frees the old
file's pages during the rename, which takes about half a millisecond per megabyte (50 ms
for a 100 MB file on Linux). The caller does not wait for that: the old file is first given
a second, hidden name in the same folder (a hard link), the new file replaces it, and the
hidden name is removed right after by one background thread (:class:`_Remover`). Where
hard links are not available (some network shares and FAT volumes) the rename simply
replaces the file.

:class:`SpooledFile` is the same write done as the bytes arrive: a data service receiving
a large ``putFile`` writes each chunk into the temporary file at once (it is the
:class:`~rtcloud.rpc.protocol.PartSink` of that argument), and ``putFile`` only renames it
into place. The data never sits in memory as a whole.

Only the standard library is used; it runs the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import stat
import tempfile
import threading
import time
import weakref
from pathlib import Path

from rtcloud.rpc.codec import Spooled

__all__ = [
    "DEFER_REMOVAL_MIN",
    "SpooledFile",
    "flush_removals",
    "replace_file",
    "write_atomically",
]

logger = logging.getLogger(__name__)

#: A replaced file at least this large is removed in the background.
DEFER_REMOVAL_MIN = 4 << 20

#: How long a rename over a file another program holds open is retried (Windows refuses it
#: while MATLAB, PsychoPy or a virus scanner has the file open), and the first pause.
REPLACE_RETRY_SECONDS = 1.0
_REPLACE_FIRST_PAUSE = 0.005


def replace_file(src: str, dst: str) -> None:
    """``os.replace(src, dst)``, retried for up to :data:`REPLACE_RETRY_SECONDS` while the
    system refuses it for a moment (PermissionError: on Windows, ``dst`` is open in another
    program, such as the presentation software polling a result file). A refusal that
    lasts is raised."""
    pause = _REPLACE_FIRST_PAUSE
    deadline = time.monotonic() + REPLACE_RETRY_SECONDS
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class _Remover:
    """One daemon thread that deletes the hidden names of replaced files, in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remove_later(self, path: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rtcloud-remove", daemon=True
                )
                self._thread.start()
        self._queue.put(path)

    def _run(self) -> None:
        while True:
            path = self._queue.get()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # the new file is in place; only disk space is at stake
                logger.warning(
                    "could not delete %s, the old copy of a replaced file: %s; delete it by hand",
                    path,
                    exc,
                )
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()


_remover = _Remover()
atexit.register(_remover.flush)


def flush_removals() -> None:
    """Wait until the old copies of every file replaced so far are deleted."""
    _remover.flush()


def _hold_old(path: str, folder: str) -> str | None:
    """A hidden second name for a large regular file at ``path``, or None."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size < DEFER_REMOVAL_MIN:
        return None
    hold = os.path.join(folder, f".rtcloud-old-{os.urandom(6).hex()}")
    try:
        os.link(path, hold, follow_symlinks=False)
    except (OSError, NotImplementedError):  # no hard links here: replace directly
        return None
    return hold


def _replace(tmp: str, target: str, folder: str) -> None:
    """Rename ``tmp`` over ``target``; a large old file is deleted in the background."""
    hold = _hold_old(target, folder)
    try:
        replace_file(tmp, target)
    finally:
        if hold is not None:
            _remover.remove_later(hold)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not delete the temporary file %s: %s; delete it by hand", path, exc)


def write_atomically(
    path: str | Path, data: bytes | bytearray | memoryview, *, prefix: str = ".rtcloud-"
) -> None:
    """Write ``data`` to ``path`` (its folder must exist) through a renamed temporary file.

    Raises OSError as the operating system reports it; a temporary file is never left behind.
    """
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _replace(tmp, target, folder)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _close_and_remove(fd: list[int], path: str) -> None:
    if fd[0] >= 0:
        os.close(fd[0])
        fd[0] = -1
    _remove_quietly(path)


class SpooledFile(Spooled):
    """A binary value written into a temporary file in ``folder`` as its chunks arrive.

    :meth:`write`, :meth:`finish` and :meth:`discard` make it a
    :class:`~rtcloud.rpc.protocol.PartSink` (they never raise: a failed write is kept and
    raised by :meth:`commit`). Until committed, the temporary file is deleted when the
    object is discarded or garbage collected, so a call that never runs leaves nothing.
    """

    __slots__ = ("_fd", "_remove", "error", "folder", "path", "size", "written")

    def __init__(self, folder: str | Path, size: int) -> None:
        self.folder = os.fspath(folder)
        self.size = size
        self.written = 0
        self.error: OSError | None = None
        fd, self.path = tempfile.mkstemp(prefix=".rtcloud-", suffix=".part", dir=self.folder)
        self._fd = [fd]
        self._remove = weakref.finalize(self, _close_and_remove, self._fd, self.path)

    def write(self, data: bytes | memoryview) -> None:
        if self.error is not None or self._fd[0] < 0:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd[0], view) :]
            self.written += len(data)
        except OSError as exc:
            self.error = exc

    def finish(self) -> SpooledFile:
        if self._fd[0] >= 0:
            try:
                os.close(self._fd[0])
            except OSError as exc:
                self.error = self.error or exc
            self._fd[0] = -1
        return self

    def discard(self) -> None:
        self._remove()

    def commit(self, target: str | Path) -> None:
        """Rename the file to ``target`` (in the same folder), replacing it atomically.

        Raises:
            OSError: writing the bytes failed (e.g. the disk is full), or the rename did.
        """
        self.finish()
        try:
            if self.error is not None:
                raise OSError(
                    self.error.errno,
                    f"the data for {os.fspath(target)!r} could not be written: "
                    f"{self.error.strerror or self.error}",
                )
            if self.written != self.size:
                raise OSError(f"only {self.written} of {self.size} bytes were written")
            target = os.fspath(target)
            if os.path.dirname(target) != self.folder:
                raise OSError(f"{target!r} is not in {self.folder!r}, where the data was written")
            _replace(self.path, target, self.folder)
        except BaseException:
            self._remove()
            raise
        self._remove.detach()

    def __len__(self) -> int:
        return self.size
