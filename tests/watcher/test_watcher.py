"""FileWatcher with real files and real timing: never early, never missed, no settle delay."""

from __future__ import annotations

import os
import statistics
import threading
import time

import pytest

from helpers import wait_for
from rtcloud.errors import FileWaitTimeout, ValidationError, WatchDirectoryError
from rtcloud.imaging.dicom import dicom_is_complete
from rtcloud.simulate.synthetic import generate_series
from rtcloud.watcher import watcher as watcher_module
from rtcloud.watcher.watcher import FileWatcher


@pytest.fixture(scope="module")
def volume_bytes(tmp_path_factory):
    (path,) = generate_series(tmp_path_factory.mktemp("src"), num_volumes=1)
    return path.read_bytes()


def write_in_pieces(path, data, chunk=32 * 1024, pause=0.01):
    """Write like a scanner: chunks with pauses; return the time of the last byte."""
    with open(path, "wb") as fh:
        for offset in range(0, len(data), chunk):
            if offset:
                time.sleep(pause)
            fh.write(data[offset : offset + chunk])
            fh.flush()
            last = time.monotonic()
    return last


#: (polling, use_watchdog): rtcloud's inotify reader on Linux (watchdog elsewhere), watchdog's
#: observer, the periodic check only.
SOURCES = [(False, False), (False, True), (True, False)]
SOURCE_IDS = ["events", "watchdog", "polling"]


@pytest.mark.parametrize(("polling", "use_watchdog"), SOURCES, ids=SOURCE_IDS)
def test_file_written_in_pieces_is_delivered_whole_and_quickly(
    tmp_path, volume_bytes, polling, use_watchdog
):
    latencies = []
    with FileWatcher(
        tmp_path, "*.dcm", 1000, polling=polling, use_watchdog=use_watchdog
    ) as watcher:
        for i in range(5):
            path = tmp_path / f"vol{i}.dcm"
            done = {}

            def writer(path=path, done=done):
                done["t"] = write_in_pieces(path, volume_bytes)

            thread = threading.Thread(target=writer)
            thread.start()
            found = watcher.wait_for_file(path.name, timeout=10)
            delivered = time.monotonic()
            data = found.read_bytes()
            thread.join()
            assert data == volume_bytes, "delivered before the last byte was written"
            latencies.append(delivered - done["t"])
    median = statistics.median(latencies)
    mode = "polling" if polling else "events"
    print(f"{mode}: median delivery {median * 1000:.1f} ms after last byte")
    assert median < (0.15 if polling else 0.05)


@pytest.mark.parametrize(("polling", "use_watchdog"), SOURCES, ids=SOURCE_IDS)
def test_renamed_and_preexisting_files(tmp_path, volume_bytes, polling, use_watchdog):
    (tmp_path / "already.dcm").write_bytes(volume_bytes)
    with FileWatcher(tmp_path, "*.dcm", polling=polling, use_watchdog=use_watchdog) as watcher:
        start = time.monotonic()
        assert watcher.wait_for_file("already.dcm", timeout=5).name == "already.dcm"
        assert time.monotonic() - start < 0.1

        renamed = {}

        def rename_in():
            time.sleep(0.2)
            temp = tmp_path / ".incoming.tmp"
            temp.write_bytes(volume_bytes)
            renamed["t"] = time.monotonic()
            os.replace(temp, tmp_path / "renamed.dcm")

        thread = threading.Thread(target=rename_in)
        thread.start()
        found = watcher.wait_for_file(str(tmp_path / "renamed.dcm"), timeout=5)
        delivered = time.monotonic()
        thread.join()
        assert found.read_bytes() == volume_bytes
        # events: well before the 0.25 s backstop would have found it
        assert delivered - renamed["t"] < (0.2 if polling else 0.1)


def test_timeout_names_file_time_and_size(tmp_path):
    (tmp_path / "small.dcm").write_bytes(b"x" * 10)
    with FileWatcher(tmp_path, "*.dcm", min_file_size=1000) as watcher:
        with pytest.raises(TimeoutError) as info:
            watcher.wait_for_file("small.dcm", timeout=0.3)
        assert isinstance(info.value, FileWaitTimeout)
        message = str(info.value)
        assert "small.dcm" in message and "0.3" in message and "minFileSize=1000" in message
        with pytest.raises(FileWaitTimeout, match="does not exist yet"):
            watcher.wait_for_file("never.dcm", timeout=0.1)
        with pytest.raises(ValidationError, match="not in the watched folder"):
            watcher.wait_for_file("/elsewhere/x.dcm", timeout=0.1)


def test_half_written_dicom_of_the_right_size_is_not_complete(tmp_path, volume_bytes):
    path = tmp_path / "cut.dcm"
    path.write_bytes(volume_bytes[: len(volume_bytes) // 2])
    assert not dicom_is_complete(path.read_bytes())
    with FileWatcher(tmp_path, "*.dcm", min_file_size=10) as watcher:
        with pytest.raises(FileWaitTimeout, match="not a complete image"):
            watcher.wait_for_file("cut.dcm", timeout=0.3)


def test_many_waiters_at_once(tmp_path, volume_bytes):
    results = {}
    with FileWatcher(tmp_path, "*.dcm") as watcher:

        def wait(name):
            results[name] = watcher.wait_for_file(name, timeout=10)

        threads = [threading.Thread(target=wait, args=(f"f{i}.dcm",)) for i in range(6)]
        for t in threads:
            t.start()
        for i in reversed(range(6)):
            (tmp_path / f"f{i}.dcm").write_bytes(volume_bytes)
        for t in threads:
            t.join(10)
    assert sorted(results) == [f"f{i}.dcm" for i in range(6)]


def test_wait_until_and_natural_order(tmp_path):
    with FileWatcher(tmp_path, "samp*.txt") as watcher:
        for name in ("samp10.txt", "samp2.txt", "samp1.txt", "other.txt"):
            (tmp_path / name).write_text("x")
        assert [p.name for p in watcher.list_matching()] == [
            "samp1.txt",
            "samp2.txt",
            "samp10.txt",
        ]

        def third():
            files = watcher.list_matching()
            return files[3] if len(files) > 3 else None

        threading.Timer(0.2, lambda: (tmp_path / "samp11.txt").write_text("y")).start()
        assert watcher.wait_until(third, 5, "fourth file").name == "samp11.txt"


@pytest.mark.parametrize(("polling", "use_watchdog"), SOURCES, ids=SOURCE_IDS)
def test_unknown_files_follow_the_folder(tmp_path, polling, use_watchdog):
    """New matching files are reported until known, in name order; gone ones are not."""
    known: set[str] = set()
    with FileWatcher(tmp_path, "s*.dcm", polling=polling, use_watchdog=use_watchdog) as watcher:
        assert watcher.unknown_files(known.__contains__) == []
        for name in ("s2.dcm", "s1.dcm", "other.dcm", ".s3.dcm"):
            (tmp_path / name).write_bytes(b"x")

        def names():
            return [p.name for p in watcher.unknown_files(known.__contains__)]

        wait_for(lambda: names() == ["s1.dcm", "s2.dcm"], 5, "both new files")
        assert names() == ["s1.dcm", "s2.dcm"]  # no new event: still unknown, still reported
        known.add(str(watcher.directory / "s1.dcm"))
        assert names() == ["s2.dcm"]
        (tmp_path / "s2.dcm").unlink()
        wait_for(lambda: names() == [], 5, "the deleted file to go")


def test_unknown_files_does_not_list_a_big_folder_at_every_event(tmp_path, monkeypatch):
    """With events, only the names they report are looked at; the whole folder is listed
    again at most every FULL_SCAN_INTERVAL (a per-slice run leaves thousands of files)."""
    for number in range(500):
        (tmp_path / f"s{number:05d}.dcm").write_bytes(b"x")
    known = {str(tmp_path.resolve() / f"s{number:05d}.dcm") for number in range(500)}
    listings = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listings.append(path)
        return real_scandir(path)

    monkeypatch.setattr(watcher_module, "FULL_SCAN_INTERVAL", 3600.0)
    with FileWatcher(tmp_path, "s*.dcm") as watcher:
        if watcher.polling:
            pytest.skip("no file events here: polling lists the folder every time")
        monkeypatch.setattr(os, "scandir", counting_scandir)
        assert watcher.unknown_files(known.__contains__) == []  # the first look lists it all
        assert len(listings) == 1
        for number in range(500, 520):
            path = tmp_path / f"s{number:05d}.dcm"
            path.write_bytes(b"x")
            wait_for(lambda p=path: p in watcher.unknown_files(known.__contains__), 5, path.name)
            known.add(str(path))
        assert len(listings) == 1
    monkeypatch.setattr(os, "scandir", real_scandir)


def test_missing_folder_and_prompt_close(tmp_path):
    with pytest.raises(WatchDirectoryError, match="no such folder"):
        FileWatcher(tmp_path / "nope")
    before = set(threading.enumerate())
    watcher = FileWatcher(tmp_path, "*.dcm")
    errors = []
    looked = []
    waited = threading.Event()

    def x_is_there():  # what wait_for_file asks, noting each time it is asked
        looked.append(time.monotonic())
        if len(looked) == 2:  # asked again: the waiter has been waiting
            waited.set()
        return tmp_path / "x.dcm" if (tmp_path / "x.dcm").exists() else None

    def waiter():
        try:
            watcher.wait_until(x_is_there, 30, "x.dcm")
        except FileWaitTimeout as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waited.wait(10), "the waiter never waited"
    start = time.monotonic()
    watcher.close()
    thread.join(5)
    assert errors and "closed" in str(errors[0]) and time.monotonic() - start < 3
    wait_for(
        lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()],
        timeout=5,
        what="the watcher's threads to end",
    )


@pytest.mark.parametrize("mode", ["watchdog", "polling"])
def test_without_close_events_a_file_being_written_is_not_complete(tmp_path, mode):
    """Where the system reports no closes (macOS, Windows, network shares: watchdog's
    observer, or polling), a .mat or .txt file was complete as soon as it reached
    minFileSize: watchFile handed over the first 1000 bytes of a file still being copied.
    It is now complete once its size and time have stayed the same for QUIET_SECONDS."""
    options = {"use_watchdog": True} if mode == "watchdog" else {"polling": True}
    watcher = FileWatcher(tmp_path, "*.mat", **options)
    try:
        assert not watcher._close_events
        path = tmp_path / "result.mat"
        handle = open(path, "wb")
        handle.write(b"A" * 1000)
        handle.flush()

        def copy_slowly():  # a network copy: a piece every 50 ms for a second
            for _ in range(20):
                time.sleep(0.05)
                handle.write(b"B" * 200)
                handle.flush()
            handle.close()

        writer = threading.Thread(target=copy_slowly)
        started = time.monotonic()
        writer.start()
        assert watcher.wait_for_file("result.mat", timeout=10) == path
        waited = time.monotonic() - started
        writer.join()
        assert path.stat().st_size == 5000 and waited >= 1.0
        assert (
            waited < 1.0 + watcher_module.QUIET_SECONDS + 1.0
        )  # handed over soon after the last write
        # a file written before the watch began is complete at once
        old = tmp_path / "old.mat"
        old.write_bytes(b"x" * 10)
        os.utime(old, (time.time() - 60, time.time() - 60))
        started = time.monotonic()
        watcher.wait_for_file("old.mat", timeout=5)
        assert time.monotonic() - started < watcher_module.QUIET_SECONDS
    finally:
        watcher.close()
