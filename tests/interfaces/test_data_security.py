"""DataInterface path and type checks: every escape attempt is refused, naming what is allowed."""

from __future__ import annotations

import os
import sys

import pytest

from rtcloud.errors import StateError, ValidationError
from rtcloud.interfaces.data import DataInterface


@pytest.fixture
def tree(tmp_path):
    allowed = tmp_path / "data"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "ok.txt").write_text("fine")
    (allowed / "ok.dcm").write_bytes(b"x" * 10)
    sibling = tmp_path / "dataX"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("sibling")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside")
    (outside / "key.pem").write_text("private")
    return tmp_path


@pytest.fixture
def di(tree):
    data = DataInterface(allowedDirs=[str(tree / "data")], allowedFileTypes=["txt", ".dcm"])
    yield data
    data.close()


def test_allowed_files_are_served(di, tree):
    assert di.getFile(str(tree / "data" / "sub" / "ok.txt")) == b"fine"
    assert di.getAllowedFileTypes() == [".txt", ".dcm"]
    assert di.listFiles(str(tree / "data" / "**" / "*.txt")) == [
        str(tree / "data" / "sub" / "ok.txt")
    ]
    assert di.listDirs(str(tree / "data" / "*")) == [str(tree / "data" / "sub")]


@pytest.mark.parametrize(
    "path",
    [
        "data/../outside/secret.txt",  # dot-dot
        "dataX/secret.txt",  # sibling with the allowed folder as a string prefix
        "outside/secret.txt",
    ],
)
def test_escapes_are_refused(di, tree, path):
    full = str(tree) + os.sep + path.replace("/", os.sep)
    with pytest.raises(ValidationError) as info:
        di.getFile(full)
    message = str(info.value)
    assert "not within the allowed directories" in message and str(tree / "data") in message


def test_relative_paths_are_refused(di):
    with pytest.raises(ValidationError, match="relative"):
        di.getFile("data/sub/ok.txt")
    with pytest.raises(ValidationError, match="relative"):
        di.listFiles("*.txt")


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_pointing_out_are_refused(di, tree):
    link = tree / "data" / "escape.txt"
    link.symlink_to(tree / "outside" / "secret.txt")
    with pytest.raises(ValidationError, match="real path"):
        di.getFile(str(link))
    dirlink = tree / "data" / "linkdir"
    dirlink.symlink_to(tree / "outside", target_is_directory=True)
    with pytest.raises(ValidationError):
        di.getFile(str(dirlink / "secret.txt"))
    with pytest.raises(ValidationError):
        di.putFile(str(dirlink / "new.txt"), "x")
    assert not (tree / "outside" / "new.txt").exists()
    # listing inside the allowed folder never reports what a link points to outside
    assert str(link) not in di.listFiles(str(tree / "data" / "*.txt"))
    # an allowed name pointing to a forbidden type inside the folder is refused too
    inner = tree / "data" / "key.pem"
    inner.write_text("k")
    alias = tree / "data" / "alias.txt"
    alias.symlink_to(inner)
    with pytest.raises(ValidationError, match="File type"):
        di.getFile(str(alias))


def test_forbidden_types_are_refused(di, tree):
    (tree / "data" / "notes.pem").write_text("k")
    with pytest.raises(ValidationError) as info:
        di.getFile(str(tree / "data" / "notes.pem"))
    assert ".txt" in str(info.value) and "notes.pem" in str(info.value)
    with pytest.raises(ValidationError):
        di.putFile(str(tree / "data" / "x.sh"), "echo")
    assert str(tree / "data" / "notes.pem") not in di.listFiles(str(tree / "data" / "*"))
    # a pattern naming a forbidden type says so (it returned an empty list, as if no file
    # were there; RT-Cloud raised too)
    with pytest.raises(ValidationError, match=r"\*\.pem.*allowed file types"):
        di.listFiles(str(tree / "data" / "*.pem"))


def test_no_allowed_dirs_or_types(tree):
    with pytest.raises(ValidationError, match="no allowed directories"):
        DataInterface(allowedDirs=[], allowedFileTypes=["*"]).getFile(
            str(tree / "data" / "ok.dcm")
        )
    with pytest.raises(ValidationError, match="no allowed file types"):
        DataInterface(allowedDirs=[str(tree)], allowedFileTypes=None).getFile(
            str(tree / "data" / "ok.dcm")
        )
    with pytest.raises(StateError):
        DataInterface(dataRemote=True)


def test_star_allows_everything(tree, monkeypatch):
    di = DataInterface(allowedDirs=["*"], allowedFileTypes=["*"])
    assert di.getFile(str(tree / "outside" / "key.pem")) == b"private"
    monkeypatch.chdir(tree / "outside")
    assert di.getFile("secret.txt") == b"outside"  # relative paths only with '*'


def test_put_file_is_atomic_and_creates_folders(di, tree):
    target = tree / "data" / "new" / "deeper" / "result.txt"
    di.putFile(str(target), "0.5")
    assert target.read_text() == "0.5"
    di.putFile(str(target), 1.25)
    assert target.read_text() == "1.25"
    di.putFile(str(target), b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".rtcloud-")]
    with pytest.raises(ValidationError, match="bytes, str or a number"):
        di.putFile(str(target), {"a": 1})


def test_missing_files(di, tree):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        di.getFile(str(tree / "data" / "none.txt"))
    with pytest.raises(FileNotFoundError, match="no allowed file"):
        di.getNewestFile(str(tree / "data" / "*.none"))
    with pytest.raises(IsADirectoryError):
        di.getFile(str(tree / "data" / "sub"))


def test_newest_file_and_clock(di, tree):
    older = tree / "data" / "a.txt"
    older.write_text("old")
    os.utime(older, (1000, 1000))
    (tree / "data" / "b.txt").write_text("new")
    assert di.getNewestFile(str(tree / "data" / "*.txt")) == b"new"
    import time

    skew = di.getClockSkew(time.time(), 0.0)
    assert abs(skew) < 0.05
    skewed = DataInterface(allowedDirs=["*"], allowedFileTypes=["*"], scannerClockSkew=1.23)
    assert abs(skewed.getClockSkew(time.time(), 0.0) - 1.23) < 0.05
