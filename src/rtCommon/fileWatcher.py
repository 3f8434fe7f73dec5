"""RT-Cloud's FileWatcher API, on top of :class:`rtcloud.watcher.watcher.FileWatcher`."""

from __future__ import annotations

import os

from rtcloud.errors import FileWaitTimeout
from rtcloud.utils import demoDelay
from rtcloud.watcher.watcher import FileWatcher as _Watcher

__all__ = ["FileWatcher"]


class FileWatcher:
    """``initFileNotifier(dir, pattern, minFileSize)`` then ``waitForFile(name, timeout)``."""

    def __init__(self) -> None:
        self._watcher: _Watcher | None = None
        self._demo_step = 0.0
        self._previous: float | None = None
        self.foundWithFileEvent = False
        self.waitLoopCount = 0

    def initFileNotifier(
        self, dir: str, filePattern: str, minFileSize: int, demoStep: float = 0
    ) -> None:
        if self._watcher is not None:
            self._watcher.close()
        self._watcher = _Watcher(dir, filePattern, minFileSize)
        self._demo_step = float(demoStep or 0)

    def waitForFile(
        self, filename: str, timeout: float = 0, timeCheckIncrement: float = 1
    ) -> str | None:
        """Full path of the file once complete; None on timeout (``timeout=0``: wait forever)."""
        if self._watcher is None:
            from rtcloud.errors import StateError

            raise StateError("waitForFile: call initFileNotifier first")
        limit = float(timeout) if timeout and timeout > 0 else float("inf")
        try:
            path = self._watcher.wait_for_file(filename, limit if limit != float("inf") else 10**9)
        except FileWaitTimeout:
            return None
        if self._demo_step > 0:
            self._previous = demoDelay(self._demo_step, self._previous)
        return os.fspath(path)

    def __del__(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
