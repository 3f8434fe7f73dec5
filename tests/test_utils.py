"""Helpers scripts use through rtCommon.utils, and StructDict."""

import copy
import pickle
import time

import numpy as np
import pytest

from rtcloud.errors import ValidationError
from rtcloud.structdict import StructDict, recurseCreateStructDict, recurseSDtoDict
from rtcloud.utils import (
    calcAvgRoundTripTime,
    demoDelay,
    findNewestFile,
    natural_sort_key,
    npToPy,
    readFile,
    stringPartialFormat,
    writeFile,
)


def test_string_partial_format_fills_only_the_tag():
    assert (
        stringPartialFormat("001_{SCAN:06d}_{TR:06d}.dcm", "SCAN", 13) == "001_000013_{TR:06d}.dcm"
    )
    assert stringPartialFormat("{a}-{b!r}-{{lit}}", "a", 5) == "5-{b!r}-{{lit}}"
    filled = stringPartialFormat("001_000013_{TR:06d}.dcm", "TR", 7)
    assert filled == "001_000013_000007.dcm"
    with pytest.raises(ValidationError):
        stringPartialFormat("{unclosed", "a", 1)


def test_round_trip_time_is_the_mean_of_calls():
    calls = []

    def ping():
        calls.append(1)
        time.sleep(0.002)

    rtt = calcAvgRoundTripTime(ping)
    assert len(calls) == 10
    assert 0.002 <= rtt < 0.05


def test_demo_delay_paces_events():
    start = time.time()
    t1 = demoDelay(0.1, None)
    t2 = demoDelay(0.1, t1)
    assert t2 - t1 >= 0.099
    assert t1 - start < 0.05


def test_structdict_semantics():
    sd = StructDict(a=1)
    assert sd.a == 1 and sd.missing is None
    sd.b = 2
    assert sd["b"] == 2
    del sd.b
    with pytest.raises(AttributeError):
        del sd.b
    assert isinstance(sd.copy(), StructDict)
    assert pickle.loads(pickle.dumps(sd)) == {"a": 1}
    assert copy.deepcopy(sd) == sd
    nested = recurseCreateStructDict({"x": [{"y": 1}], "t": ({"z": 2},)})
    assert nested.x[0].y == 1 and nested.t[0].z == 2
    assert recurseSDtoDict(nested) == {"x": [{"y": 1}], "t": [{"z": 2}]}
    assert type(recurseSDtoDict(nested)) is dict


def test_files_and_natural_sort(tmp_path):
    target = tmp_path / "a" / "b" / "f.txt"
    writeFile(str(target), "hello")
    assert readFile(str(target)) == b"hello"
    assert readFile(str(target), binary=False) == "hello"
    names = ["samp10.dcm", "samp2.dcm", "samp1.dcm"]
    assert sorted(names, key=natural_sort_key) == ["samp1.dcm", "samp2.dcm", "samp10.dcm"]
    old = tmp_path / "old.txt"
    old.write_text("1")
    new = tmp_path / "new.txt"
    new.write_text("2")
    import os

    os.utime(old, (1, 1))
    assert findNewestFile(str(tmp_path), "*.txt") == str(new)
    assert findNewestFile(str(tmp_path), "*.none") is None


def test_np_to_py():
    data = {"a": np.float32(1.5), "b": [np.int64(3), (np.bool_(True),)], "c": np.arange(2)}
    out = npToPy(data)
    assert type(out["a"]) is float and type(out["b"][0]) is int and out["b"][1][0] is True
    assert isinstance(out["c"], np.ndarray)


def test_rt_clouds_array_and_process_helpers(tmp_path, monkeypatch, capsys):
    """``find``, ``flatten_1Ds``, ``runCmdCheckOutput`` and ``getGitCodeId`` were missing
    from ``rtCommon.utils``: projects that import them stopped at the import."""
    import subprocess
    import sys

    import numpy as np

    import rtcloud.utils
    from rtCommon.errors import NotImplementedError as RtNotImplemented
    from rtCommon.utils import find, flatten_1Ds, getGitCodeId, runCmdCheckOutput

    mask = np.array([[0, 1, 0], [1, 0, 1]])
    # MATLAB's find goes down the columns: (1,0), (0,1), (1,2); as row-major flat indices
    expected = [r * 3 + c for c in range(3) for r in range(2) if mask[r, c]]
    assert list(find(mask)) == expected == [3, 1, 5]
    cube = np.random.default_rng(0).integers(0, 2, (3, 4, 2))
    flat = cube.ravel()
    assert list(flat[find(cube)]) == list(cube.ravel(order="F")[cube.ravel(order="F") != 0])
    assert flatten_1Ds(np.zeros((1, 5))).shape == (5,)
    assert flatten_1Ds(np.zeros((4, 1, 3))).shape == (4, 3)
    assert flatten_1Ds(np.zeros((2, 3))).shape == (2, 3)
    assert runCmdCheckOutput([sys.executable, "-c", "print('Volume 3 READY')"], "ready")
    assert not runCmdCheckOutput([sys.executable, "-c", "print('nothing')"], "ready")
    assert "Volume 3 READY" in capsys.readouterr().out
    monkeypatch.setattr(rtcloud.utils, "_code_id", None)
    monkeypatch.chdir(tmp_path)  # not a git checkout
    assert getGitCodeId() == f"rtcloud:{rtcloud.__version__}"
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(rtcloud.utils, "_code_id", None)
    assert getGitCodeId() == f"main:{commit}"
    with pytest.raises(NotImplementedError):  # the builtin catches RT-Cloud's
        raise RtNotImplemented("not in this version")
