"""write_atomically: whole files only, nothing left behind, large old copies removed later."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pytest

from rtcloud import atomic_files
from rtcloud.atomic_files import (
    DEFER_REMOVAL_MIN,
    SpooledFile,
    flush_removals,
    write_atomically,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_is_written_whole_and_alone(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.bin", b"abc")
    write_atomically(tmp_path / "b.bin", memoryview(b"xyz")[1:])
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert (tmp_path / "b.bin").read_bytes() == b"yz"
    assert _names(tmp_path) == ["a.bin", "b.bin"]


def test_a_large_file_is_replaced_and_its_old_copy_removed(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    old = os.urandom(DEFER_REMOVAL_MIN)
    new = bytearray(os.urandom(DEFER_REMOVAL_MIN + 1))
    target.write_bytes(old)
    with open(target, "rb") as reader:  # a reader that opened the old file keeps it whole
        write_atomically(target, new)
        assert target.read_bytes() == new
        flush_removals()
        assert _names(tmp_path) == ["model.bin"]
        assert reader.read() == old


def test_only_large_regular_files_get_a_second_name(tmp_path: Path) -> None:
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(b"\0" * DEFER_REMOVAL_MIN)
    small.write_bytes(b"\0" * 10)
    hold = atomic_files._hold_old(str(big), str(tmp_path))
    assert hold is not None and os.path.basename(hold).startswith(".rtcloud-old-")
    assert os.stat(hold).st_ino == os.stat(big).st_ino
    os.unlink(hold)
    assert atomic_files._hold_old(str(small), str(tmp_path)) is None
    assert atomic_files._hold_old(str(tmp_path / "missing"), str(tmp_path)) is None
    assert atomic_files._hold_old(str(tmp_path), str(tmp_path)) is None  # a folder


def test_without_hard_links_the_file_is_replaced_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(95, "Operation not supported")

    target = tmp_path / "model.bin"
    target.write_bytes(b"1" * DEFER_REMOVAL_MIN)
    monkeypatch.setattr(os, "link", refuse)  # what a FAT volume or some shares answer
    write_atomically(target, b"2" * 100)
    assert target.read_bytes() == b"2" * 100
    assert _names(tmp_path) == ["model.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(target, "text is not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["keep.txt"]
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "no-such-folder" / "x.bin", b"x")


def test_an_old_copy_that_cannot_be_deleted_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = tmp_path / "stuck"
    stuck.mkdir()  # unlink refuses a folder: stands in for a file another program holds
    with caplog.at_level(logging.WARNING, logger="rtcloud.atomic_files"):
        atomic_files._remover.remove_later(str(stuck))
        flush_removals()
    assert stuck.exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(stuck) in m and "by hand" in m for m in messages)


# ------------------------------------------------------------------ SpooledFile


def test_a_spooled_file_is_written_as_it_arrives_and_renamed_into_place(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    target = tmp_path / "scan.bin"
    target.write_bytes(b"old" * DEFER_REMOVAL_MIN)  # a large file it replaces
    spool = SpooledFile(tmp_path, len(data))
    for start in range(0, len(data), 1 << 20):
        spool.write(memoryview(data)[start : start + (1 << 20)])
    assert spool.finish() is spool and len(spool) == len(data)
    assert target.read_bytes()[:3] == b"old"  # nothing visible before the commit
    spool.commit(target)
    assert target.read_bytes() == data
    flush_removals()
    assert _names(tmp_path) == ["scan.bin"]


def test_a_spooled_file_not_committed_leaves_nothing(tmp_path: Path) -> None:
    spool = SpooledFile(tmp_path, 10)
    spool.write(b"0123456789")
    spool.discard()
    assert _names(tmp_path) == []
    forgotten = SpooledFile(tmp_path, 10)  # e.g. a call that was never run
    forgotten.write(b"01234")
    del forgotten
    gc.collect()
    assert _names(tmp_path) == []


def test_a_failed_spool_write_is_raised_at_commit_and_cleaned_up(tmp_path: Path) -> None:
    spool = SpooledFile(tmp_path, 6)
    spool.write(b"abc")
    os.close(spool._fd[0])  # the OS refuses every further write (EBADF)
    spool.write(b"def")
    assert isinstance(spool.error, OSError)
    with pytest.raises(OSError, match="could not be written"):
        spool.commit(tmp_path / "x.bin")
    assert _names(tmp_path) == []

    short = SpooledFile(tmp_path, 6)
    short.write(b"abc")
    with pytest.raises(OSError, match="only 3 of 6 bytes"):
        short.commit(tmp_path / "x.bin")
    other = tmp_path / "other"
    other.mkdir()
    elsewhere = SpooledFile(tmp_path, 1)
    elsewhere.write(b"z")
    with pytest.raises(OSError, match="where the data was written"):
        elsewhere.commit(other / "x.bin")
    assert _names(tmp_path) == ["other"] and _names(other) == []
