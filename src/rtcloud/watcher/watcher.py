"""FileWatcher: wait for files in one folder, never early and never missing one.

File-system events (on Linux our own inotify reader, :mod:`rtcloud.watcher.inotify`; on
macOS and Windows FSEvents and ReadDirectoryChangesW through watchdog) wake the waiters as
soon as something happens to a matching file, so a complete file is handed over within
milliseconds of its last byte, with no settle delay.
A backstop timer re-checks every ``poll_interval`` seconds, because events get lost and
network shares (SMB/NFS) send none: with ``polling=True`` (or when the native observer cannot
start) only the timer runs, at a shorter interval.

Waiting never holds a lock that other waiters need: any number of threads may wait on one
watcher, each for its own file.

The watcher answers one question, "is this file complete?". The parse that answered it for
a DICOM file goes to the ``on_complete`` hook (a stream's
:class:`~rtcloud.imaging.volume.VolumeReader`), so that the file is not parsed again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from rtcloud.errors import (
    FileWaitTimeout,
    NotInWatchedFolderError,
    WatchDirectoryError,
)
from rtcloud.watcher import inotify
from rtcloud.watcher.filters import (
    CompletenessCheck,
    OnComplete,
    make_completeness_check,
    matches,
    sort_paths,
)

__all__ = ["FileWatcher", "WatchDirectoryError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Without close events, a file other than DICOM is complete once its size and
#: modification time have not changed for this long (a DICOM file's own bytes say when it is).
QUIET_SECONDS = 0.3

#: Backstop re-check interval with native events, and with polling only (seconds).
EVENT_BACKSTOP = 0.25
POLL_INTERVAL = 0.05
#: With native events, :meth:`FileWatcher.unknown_files` lists the whole folder at most this
#: often (seconds); in between it looks only at the names events reported. A per-slice run
#: leaves tens of thousands of files in the folder, and listing them at every event would
#: cost more than the TR.
FULL_SCAN_INTERVAL = 1.0
#: Names kept for :meth:`FileWatcher.unknown_files` between calls; beyond, it lists again.
MAX_CHANGED_NAMES = 10_000

#: The events that can change whether a file is complete. Opening a file, or closing one that
#: was only read, cannot; those events are not asked for, so that the watcher's own reads of
#: a file being written do not wake its waiters again and again.
CHANGE_EVENTS: tuple[type[FileSystemEvent], ...] = (
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
)


class _Handler(FileSystemEventHandler):
    """watchdog's events, as the changes :mod:`rtcloud.watcher.inotify` reports."""

    def __init__(self, watcher: FileWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = type(event)
        if event.is_directory or kind not in CHANGE_EVENTS:
            return
        src = os.path.basename(os.fsdecode(event.src_path))
        if kind is FileCreatedEvent or kind is FileModifiedEvent:
            self._watcher._on_change(src, inotify.WRITING)
        elif kind is FileDeletedEvent:
            self._watcher._on_change(src, inotify.OTHER)
        else:  # closed after writing, or moved
            self._watcher._on_change(src, inotify.SETTLED)
            if isinstance(event, FileMovedEvent):
                dest = os.path.basename(os.fsdecode(event.dest_path))
                self._watcher._on_change(dest, inotify.SETTLED)


class FileWatcher:
    """Watches one folder for files matching a glob pattern.

    Args:
        directory: the folder (must exist).
        pattern: glob of the file names that count (``*.dcm``, ``001_000013_*.dcm``).
        min_file_size: files smaller than this many bytes are never complete.
        completeness: predicate deciding when a file is complete (default: see
            :func:`~rtcloud.watcher.filters.make_completeness_check`).
        polling: True to use only periodic checks (network shares); False to require
            events; None (default) for events with a polling backstop.
        use_watchdog: take events from watchdog's observer on Linux too, instead of
            rtcloud's own inotify reader (other systems always use watchdog).
        poll_interval: seconds between backstop checks.
        on_complete: receives each DICOM object the default checks find complete (in the
            thread that checked).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        pattern: str = "*",
        min_file_size: int = 0,
        *,
        completeness: CompletenessCheck | None = None,
        polling: bool | None = None,
        use_watchdog: bool = False,
        poll_interval: float | None = None,
        on_complete: OnComplete | None = None,
        admit: Callable[[Path], bool] | None = None,
    ) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise WatchDirectoryError(
                f"cannot watch {os.fspath(directory)!r}: no such folder; create it first or "
                "check the path (the scanner's export folder must exist before the watch starts)"
            )
        self.directory = Path(os.path.realpath(path))
        self.pattern = pattern
        self.min_file_size = int(min_file_size or 0)
        self._open_writes: set[str] = set()
        self._writes_lock = threading.Lock()
        self._close_events = False  # True once our inotify reader (which reports closes) runs
        # without close events: each file's last (size, mtime) and when it was first seen
        self._last_change: dict[str, tuple[tuple[int, int], float]] = {}
        #: Whether a file may be read at all (its real path inside the allowed folders: a
        #: symbolic link in the folder must not lead elsewhere); others are never complete.
        self.admit = admit or (lambda _path: True)
        self.completeness = self._admitted(
            completeness
            or make_completeness_check(
                self.min_file_size, still_open=self._still_open, on_complete=on_complete
            )
        )
        #: Like ``completeness``, but every file counts as DICOM (for image streams).
        self.dicom_completeness = self._admitted(
            make_completeness_check(self.min_file_size, dicom=True, on_complete=on_complete)
        )
        self._cond = threading.Condition()
        self._generation = 0
        # names events reported since unknown_files last looked, and the unknown names it
        # returned then (they are looked at again until known or gone)
        self._changes_lock = threading.Lock()
        self._changed: set[str] = set()
        self._unknown: set[str] = set()
        self._scan_due = True
        self._last_scan = 0.0
        self._closed = threading.Event()
        self._observer: Any = None
        self._events: inotify.FolderEvents | None = None
        self.polling = bool(polling)
        if not self.polling:
            try:
                self._start_events(use_watchdog)
            except Exception as exc:  # inotify limits, unsupported file systems, ...
                if polling is False:
                    raise
                logger.warning(
                    "file events unavailable for %s (%s); checking every %.0f ms instead",
                    self.directory,
                    exc,
                    1000 * POLL_INTERVAL,
                )
                self.polling = True
        self.poll_interval = poll_interval or (POLL_INTERVAL if self.polling else EVENT_BACKSTOP)
        self._ticker = threading.Thread(target=self._tick, name="rtcloud-watch-poll", daemon=True)
        self._ticker.start()

    # ------------------------------------------------------------ event plumbing

    def _start_events(self, use_watchdog: bool) -> None:
        """Linux: our own inotify reader (see :mod:`rtcloud.watcher.inotify`); elsewhere, or
        when inotify refuses, watchdog's observer."""
        if not use_watchdog and inotify.available():
            try:
                self._events = inotify.FolderEvents(str(self.directory), self._on_change)
                self._close_events = True
                return
            except OSError as exc:
                logger.debug("inotify refused %s (%s); using watchdog", self.directory, exc)
        observer = Observer()
        observer.schedule(
            _Handler(self),
            str(self.directory),
            recursive=False,
            event_filter=list(CHANGE_EVENTS),
        )
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _admitted(self, check: CompletenessCheck) -> CompletenessCheck:
        admit = self.admit
        return lambda path: admit(path) and check(path)

    def _still_open(self, path: Path) -> bool:
        """Whether a (non-DICOM) file may still be being written. With close events, until
        its writer closes it; without (macOS, Windows, polling, a network share), until its
        size and modification time have stayed the same for :data:`QUIET_SECONDS`."""
        key = str(path)
        if self._close_events:
            with self._writes_lock:
                return key in self._open_writes
        try:
            st = os.stat(path)
        except OSError:
            return True
        if time.time() - st.st_mtime >= QUIET_SECONDS:
            return False  # written a while ago (before the watch, say)
        signature, now = (st.st_size, st.st_mtime_ns), time.monotonic()
        with self._writes_lock:
            seen = self._last_change.get(key)
            if seen is None or seen[0] != signature:
                if len(self._last_change) >= MAX_CHANGED_NAMES:
                    self._last_change.clear()
                self._last_change[key] = (signature, now)
                return True
            return now - seen[1] < QUIET_SECONDS

    def _on_change(self, name: str | None, kind: int) -> None:
        """A change to folder entry ``name`` (None: anything may have changed)."""
        if name is None:  # lost events, or a backstop tick without events: list again
            with self._changes_lock:
                self._scan_due = True
        else:
            if not matches(name, self.pattern):
                return
            with self._changes_lock:
                if len(self._changed) >= MAX_CHANGED_NAMES:  # nobody asks: list again later
                    self._changed.clear()
                    self._scan_due = True
                self._changed.add(name)
            if self._close_events and kind != inotify.OTHER:
                key = str(self.directory / name)
                with self._writes_lock:
                    if kind == inotify.WRITING:
                        self._open_writes.add(key)
                    else:
                        self._open_writes.discard(key)
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def _tick(self) -> None:
        while not self._closed.wait(self.poll_interval):
            self._notify()

    # ------------------------------------------------------------ waiting

    def wait_until(self, predicate: Callable[[], T | None], timeout: float, description: str) -> T:
        """Re-evaluate ``predicate`` on every change until it returns a value; return it.

        Raises :class:`~rtcloud.errors.FileWaitTimeout` after ``timeout`` seconds.
        """
        start = time.monotonic()
        deadline = start + max(0.0, float(timeout))
        while True:
            with self._cond:
                generation = self._generation
            value = predicate()
            if value is not None:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                waited = time.monotonic() - start
                why = "the watch was closed" if self._closed.is_set() else f"waited {waited:.2f} s"
                raise FileWaitTimeout(
                    f"{description}: not complete ({why})", path=None, waited=waited
                )
            with self._cond:
                if self._generation == generation:
                    self._cond.wait(min(remaining, self.poll_interval * 2))

    def _resolve(self, path_or_name: str | os.PathLike[str]) -> Path:
        raw = os.fspath(path_or_name)
        if not os.path.dirname(raw):
            return self.directory / raw
        parent = Path(os.path.realpath(os.path.dirname(raw)))
        if os.path.normcase(str(parent)) != os.path.normcase(str(self.directory)):
            raise NotInWatchedFolderError(
                f"{raw!r} is not in the watched folder {str(self.directory)!r}"
            )
        return self.directory / os.path.basename(raw)

    def wait_for_file(self, path_or_name: str | os.PathLike[str], timeout: float) -> Path:
        """Wait until the file is complete; return its path.

        A bare name means a file in the watched folder. Raises
        :class:`~rtcloud.errors.FileWaitTimeout` (a ``TimeoutError``) naming the file, the
        time waited and, when the file is there but too small, its size.
        """
        path = self._resolve(path_or_name)
        try:
            return self.wait_until(
                lambda: path if self.completeness(path) else None, timeout, str(path)
            )
        except FileWaitTimeout as exc:
            raise FileWaitTimeout(
                f"file {str(path)!r} was not complete after {exc.waited or 0:.2f} s"
                f"{self._diagnose(path)}",
                path=str(path),
                waited=exc.waited,
            ) from None

    def _diagnose(self, path: Path) -> str:
        if path.exists() and not self.admit(path):
            return (
                f" (it leads to {os.path.realpath(path)!r}, outside the allowed folders: "
                "a symbolic link is followed only inside them)"
            )
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return " (it does not exist yet)"
        except OSError as exc:
            return f" ({exc})"
        if size < self.min_file_size:
            return (
                f" (it has {size} bytes, less than minFileSize={self.min_file_size}: is "
                "minFileSize too high?)"
            )
        return f" (it has {size} bytes but is not a complete image yet)"

    def unknown_files(self, known: Callable[[str], bool]) -> list[Path]:
        """Files in the folder whose names match the pattern and whose paths ``known`` does
        not know, in name order.

        With native events this looks only at the names events reported since the last
        call and at the unknown files it returned then, and lists the whole folder at most
        every :data:`FULL_SCAN_INTERVAL` seconds (the backstop for lost events), so its cost
        does not grow with the files a run leaves in the folder. When polling, or after lost
        events, it lists the folder every time.
        """
        folder = str(self.directory)
        now = time.monotonic()
        with self._changes_lock:
            changed, self._changed = self._changed, set()
            scan = self.polling or self._scan_due or now - self._last_scan >= FULL_SCAN_INTERVAL
            if scan:
                self._scan_due = False
                self._last_scan = now
            candidates = changed | self._unknown
        if scan:
            try:
                with os.scandir(folder) as entries:
                    names = [entry.name for entry in entries]
            except FileNotFoundError:
                names = []
        else:
            names = [n for n in candidates if os.path.lexists(os.path.join(folder, n))]
        found = sorted(
            name
            for name in names
            if not name.startswith(".")
            and matches(name, self.pattern)
            and not known(os.path.join(folder, name))
        )
        with self._changes_lock:  # merged: another caller may have looked meanwhile
            self._unknown = (self._unknown - candidates - set(names)) | set(found)
        return [Path(folder, name) for name in found]

    def list_matching(self) -> list[Path]:
        """Files in the folder whose names match the pattern, in natural name order."""
        found: list[Path] = []
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if matches(entry.name, self.pattern) and not entry.name.startswith("."):
                        try:
                            if entry.is_file() and self.admit(self.directory / entry.name):
                                found.append(self.directory / entry.name)
                        except OSError:
                            continue
        except FileNotFoundError:
            return []
        return sort_paths(found)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop watching; waiters return with FileWaitTimeout promptly."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._notify()
        if self._events is not None:
            self._events.close()
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=2)
            except Exception:  # the observer may already be gone
                pass
        self._ticker.join(timeout=2)

    def __enter__(self) -> FileWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
