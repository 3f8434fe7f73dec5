"""Feedback results as files, for presentation software that polls a folder (MATLAB, PsychoPy).

For every ``setResult(runId, trId, value)`` the subject side writes

- ``<outDir>/run<R>/classoutput/vol-<R>-<T>.txt`` holding just the value (RT-Cloud's layout), and
- ``<outDir>/run<R>/results/vol-<R>-<T>.json`` holding every field and timestamp,

and for every ``setResultDict(values, name=NAME)`` it writes ``<outDir>/<NAME>.json``. Each
file is written to a temporary name in the same folder and renamed into place, so a reader
never sees half a file. A name can never write outside the output folder: it must be a plain
file name of letters, digits, ``-``, ``_`` and ``.``.

:class:`BackgroundWriter` is what the subject service uses: a result's names are checked at
once (a bad name fails the script's call), and its files are made and written right after,
in order, by one writer thread, so acknowledging a result waits neither for the encoding
nor for the disk (creating a file takes 0.05-0.5 ms depending on the file system). A write
that fails is logged and raised on the script's next feedback call, never lost.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any

from rtcloud.atomic_files import replace_file, write_atomically
from rtcloud.errors import ValidationError
from rtcloud.utils import json_plain

__all__ = [
    "BackgroundWriter",
    "ResultFileWriter",
    "atomic_write_bytes",
    "result_names",
    "safe_name",
]

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(name: str) -> str:
    """``name`` if it is a plain file name (no folders, no ``..``); else ValidationError."""
    if not isinstance(name, str) or not _SAFE.match(name) or ".." in name:
        raise ValidationError(
            f"result name {name!r} is not allowed: use letters, digits, '-', '_' and '.' only "
            "(no folders), e.g. 'feedback_run1_tr5'"
        )
    return name


def _run_part(value: Any, what: str) -> str:
    text = str(value)  # 3.0 -> "3.0", as RT-Cloud named its files
    if not re.match(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$", text) or ".." in text:
        raise ValidationError(f"{what} {value!r} cannot be used in a file name")
    return text


def result_names(result: dict[str, Any]) -> tuple[str | None, str]:
    """(run, base name) of a result's files; run is None for a named ``setResultDict``.

    ValidationError for names that cannot be file names (the server checks results with
    this before it sends them on, so a script hears of a bad name on the call itself).
    """
    if "name" in result:  # setResultDict labels every result it sends; setResult never does
        return None, safe_name(str(result["name"]))
    missing = [k for k in ("runId", "trId", "value") if k not in result]
    if missing:
        raise ValidationError(f"a result needs runId, trId and value; missing {missing}")
    run = _run_part(result["runId"], "runId")
    tr = _run_part(result["trId"], "trId")
    return run, f"vol-{run}-{tr}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, prefix=".tmp-")


class ResultFileWriter:
    """Writes each feedback result into ``out_dir`` as described in the module docstring."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._checked: set[Path] = set()  # folders known to lie inside out_dir
        self._run_folders: dict[str, Path] = {}  # run -> its folder, both subfolders checked

    def _folder_inside(self, folder: Path) -> Path:
        """``folder`` if it is, or will be, inside the output folder; else ValidationError."""
        if folder in self._checked:
            return folder
        real = folder.resolve()
        if real != self.out_dir and self.out_dir not in real.parents:
            raise ValidationError(
                f"refusing to write in {str(folder)!r}, outside {str(self.out_dir)!r}"
            )
        if len(self._checked) < 4096:
            self._checked.add(folder)
        return folder

    def check(self, result: dict[str, Any]) -> tuple[Path, str]:
        """Where a result's files go: (folder, base name); ValidationError for bad names.

        For a ``setResult`` result the folder is the run's folder and the base name
        ``vol-R-T``; for a named ``setResultDict`` result, the output folder and the name.
        """
        run, name = result_names(result)
        if run is None:
            return self.out_dir, name
        base = self._run_folders.get(run)
        if base is None:
            base = self.out_dir / f"run{run}"
            self._folder_inside(base / "results")
            self._folder_inside(base / "classoutput")
            if len(self._run_folders) < 4096:
                self._run_folders[run] = base
        return base, name

    def plan(self, result: dict[str, Any]) -> list[tuple[Path, bytes]]:
        """The files one result becomes, as (path, bytes); ValidationError for bad names."""
        folder, name = self.check(result)
        record = json_plain(result)
        record.setdefault("writtenAt", time.time())
        # one line, by the C encoder (an indented dump takes the slow, pure-Python path)
        text = json.dumps(record, sort_keys=True).encode("utf-8")
        if folder == self.out_dir:
            return [(folder / f"{name}.json", text)]
        # the JSON record first: a reader that sees the .txt file finds the record too
        return [
            (folder / "results" / f"{name}.json", text),
            (folder / "classoutput" / f"{name}.txt", f"{result['value']}\n".encode()),
        ]

    def write(self, result: dict[str, Any]) -> list[Path]:
        """Write one result (a dict as queued by SubjectInterface); return the files written."""
        files = self.plan(result)
        for path, data in files:
            atomic_write_bytes(path, data)
        return sorted(path for path, _ in files)


#: Seconds a result's files may take to write before its call fails (a hung network share).
WRITE_TIMEOUT = 30.0


class _Job:
    """One result for the writer thread, and its outcome."""

    __slots__ = ("done", "error", "result")

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.done = threading.Event()
        self.error: OSError | ValidationError | None = None


class BackgroundWriter:
    """Checks each result and writes its files in one writer thread, in order.

    :meth:`submit` returns once the result's files are on disk, so the server counts a
    result as delivered only then (a subject service killed in between gets it again when
    it is back) and a failure to write comes back on the very call whose files failed.
    """

    def __init__(self, writer: ResultFileWriter) -> None:
        self.writer = writer
        self._folders: set[str] = set()  # created already: no mkdir per result
        self._tmp_suffix = f".{os.getpid()}.part"
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rtcloud-results", daemon=True)
        self._thread.start()

    def submit(self, result: dict[str, Any]) -> None:
        self.writer.check(result)  # a bad name fails this call
        job = _Job(dict(result))
        self._queue.put(job)
        if not job.done.wait(WRITE_TIMEOUT):
            raise OSError(
                f"the subject service has waited {WRITE_TIMEOUT:g} s to write a result's "
                f"files into {os.fspath(self.writer.out_dir)!r}: is that folder on a network "
                "share that stopped answering?"
            )
        if job.error is not None:
            raise job.error

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job.error = self._write_result(job.result)
                job.done.set()
            finally:
                self._queue.task_done()

    def _write_result(self, result: dict[str, Any]) -> OSError | ValidationError | None:
        # Strings, not Paths, and a log line per folder rather than per file: this thread
        # shares the interpreter with the one answering the script's next call.
        failure: OSError | ValidationError
        name = os.fspath(self.writer.out_dir)
        try:
            for path, data in self.writer.plan(result):  # names checked in submit already
                name = os.fspath(path)
                self._write(name, data)
                logger.debug("feedback written: %s", name)
            return None
        except OSError as exc:
            failure = OSError(
                exc.errno,
                f"the subject service could not write the result file {name!r}: "
                f"{exc.strerror or exc}",
            )
        except ValidationError as exc:
            failure = ValidationError(
                f"the subject service could not write the files of this result: {exc}"
            )
        logger.error("%s", failure)
        return failure

    def _write(self, path: str, data: bytes) -> None:
        """Atomic write with few steps (only this thread writes these temporary names)."""
        folder, name = os.path.split(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
            logger.info("writing feedback files into %s", folder)
        tmp = f"{folder}{os.sep}.{name}{self._tmp_suffix}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        try:
            replace_file(tmp, path)  # retried while the presentation program has it open
        except OSError:
            self._folders.discard(folder)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def flush(self) -> None:
        """Wait until every submitted result is on disk."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
