"""rtcloud.watcher.inotify: the changes of a real folder, read from a real inotify descriptor."""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest

from rtcloud.watcher import inotify

pytestmark = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux's")


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str | None, int]] = []
        self.cond = threading.Condition()

    def __call__(self, name: str | None, kind: int) -> None:
        with self.cond:
            self.changes.append((name, kind))
            self.cond.notify_all()

    def wait_for(self, change: tuple[str | None, int], timeout: float = 5.0) -> float:
        start = time.monotonic()
        with self.cond:
            ok = self.cond.wait_for(lambda: change in self.changes, timeout)
        assert ok, f"{change} not reported; got {self.changes}"
        return time.monotonic() - start


def test_writes_closes_renames_and_deletes_are_reported(tmp_path):
    rec = Recorder()
    events = inotify.FolderEvents(str(tmp_path), rec)
    try:
        with open(tmp_path / "a.dcm", "wb") as fh:
            rec.wait_for(("a.dcm", inotify.WRITING))
            fh.write(b"x" * 1000)
            fh.flush()
        rec.wait_for(("a.dcm", inotify.SETTLED))
        (tmp_path / ".b.partial").write_bytes(b"y")
        os.replace(tmp_path / ".b.partial", tmp_path / "b.dcm")
        rec.wait_for(("b.dcm", inotify.SETTLED))
        assert (".b.partial", inotify.SETTLED) in rec.changes  # moved away
        (tmp_path / "a.dcm").unlink()
        rec.wait_for(("a.dcm", inotify.OTHER))
        (tmp_path / "sub").mkdir()  # sub-folders are not files being written
        (tmp_path / "c.dcm").write_bytes(b"z")
        rec.wait_for(("c.dcm", inotify.SETTLED))
        assert all(name != "sub" for name, _ in rec.changes)
    finally:
        events.close()


def test_the_folder_going_away_asks_for_a_full_recheck(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    rec = Recorder()
    events = inotify.FolderEvents(str(folder), rec)
    try:
        folder.rmdir()
        rec.wait_for((None, inotify.OTHER))
    finally:
        events.close()


def test_close_stops_the_reader_and_releases_its_descriptors(tmp_path):
    def readers() -> int:
        return sum(t.name == "rtcloud-inotify" for t in threading.enumerate())

    before = len(os.listdir("/proc/self/fd"))
    threads = readers()
    rec = Recorder()
    for _ in range(20):
        events = inotify.FolderEvents(str(tmp_path), rec)
        events.close()
        events.close()  # twice is fine
    assert len(os.listdir("/proc/self/fd")) <= before
    assert readers() <= threads
    (tmp_path / "late.dcm").write_bytes(b"x")
    time.sleep(0.05)
    assert rec.changes == []


def test_a_folder_it_cannot_watch_raises_oserror(tmp_path):
    with pytest.raises(OSError, match="inotify_add_watch"):
        inotify.FolderEvents(str(tmp_path / "missing"), Recorder())
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        inotify.FolderEvents(str(tmp_path / "file"), Recorder())  # not a folder


def test_a_failing_callback_does_not_end_the_watch(tmp_path):
    seen: list[str | None] = []

    def callback(name: str | None, kind: int) -> None:
        seen.append(name)
        if name == "bad.dcm":
            raise RuntimeError("handler bug")

    events = inotify.FolderEvents(str(tmp_path), callback)
    try:
        (tmp_path / "bad.dcm").write_bytes(b"x")
        (tmp_path / "good.dcm").write_bytes(b"x")
        deadline = time.monotonic() + 5
        while "good.dcm" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "good.dcm" in seen
    finally:
        events.close()


def _event(mask: int, name: bytes = b"", pad: int = 0) -> bytes:
    raw = name + b"\0" * pad
    return struct.pack("iIII", 1, mask, 0, len(raw)) + raw


def test_parse_events_reads_padded_names_and_flags():
    buffer = (
        _event(0x100, b"v1.dcm", pad=10)  # IN_CREATE
        + _event(0x2, b"v1.dcm", pad=2)  # IN_MODIFY
        + _event(0x8, b"v1.dcm", pad=2)  # IN_CLOSE_WRITE
        + _event(0x40000100, b"subdir", pad=2)  # IN_CREATE | IN_ISDIR
        + _event(0x80, "é.dcm".encode(), pad=3)  # IN_MOVED_TO
        + _event(0x200, b"v1.dcm", pad=2)  # IN_DELETE
        + _event(0x4000)  # IN_Q_OVERFLOW, no name
    )
    assert inotify.parse_events(buffer) == [
        ("v1.dcm", inotify.WRITING),
        ("v1.dcm", inotify.WRITING),
        ("v1.dcm", inotify.SETTLED),
        ("é.dcm", inotify.SETTLED),
        ("v1.dcm", inotify.OTHER),
        (None, inotify.OTHER),
    ]
    assert inotify.parse_events(buffer[:10]) == []  # a cut-off header is not read past
