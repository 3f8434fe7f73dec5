"""Experiment config loading: TOML and JSON, required fields, plot defaults, clear errors."""

import json

import pytest

from rtcloud.config import PLOT_DEFAULTS, loadConfigFile
from rtcloud.errors import ConfigError, InvocationError, ValidationError
from rtcloud.structdict import StructDict

GOOD = """
# comment kept by the settings page
title = "My study"
subjectName = "sub01"
runNum = [1, 2]
scanNum = [11, 13]
imgDir = "/data/scanner"
minExpectedDicomSize = 300000
[nested]
alpha = 0.5
items = [{a = 1}, {a = 2}]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_loads_into_structdict_with_attribute_access(tmp_path):
    cfg = loadConfigFile(write(tmp_path, "exp.toml", GOOD))
    assert isinstance(cfg, StructDict)
    assert cfg.runNum == [1, 2] and cfg["scanNum"] == [11, 13]
    assert cfg.subjectName == "sub01"
    assert cfg.nested.alpha == 0.5
    assert cfg.nested["items"][1].a == 2
    assert cfg.imgDirX is None  # a missing key reads as None, as scripts rely on
    assert cfg.title == "My study"  # given values win over defaults


def test_json_loads_the_same(tmp_path):
    data = {"subjectName": "s", "runNum": [3], "scanNum": [5], "extra": {"k": [1, {"z": 2}]}}
    cfg = loadConfigFile(write(tmp_path, "exp.json", json.dumps(data)))
    assert cfg.runNum == [3]
    assert cfg.extra.k[1].z == 2


def test_plot_defaults_and_auto_range(tmp_path):
    cfg = loadConfigFile(write(tmp_path, "exp.toml", GOOD))
    for key in ("plotTitle", "plotXLabel", "plotYLabel"):
        assert cfg[key] == PLOT_DEFAULTS[key]
    assert cfg.plotAutoRangeX is True and cfg.plotAutoRangeY is True
    ranged = GOOD + "\n"
    ranged = ranged.replace(
        'title = "My study"', 'title = "x"\nplotYRangeLow = -1\nplotYRangeHigh = 1.5'
    )
    cfg = loadConfigFile(write(tmp_path, "r.toml", ranged))
    assert cfg.plotAutoRangeY is False and cfg.plotAutoRangeX is True
    assert cfg.plotYRangeHigh == 1.5


@pytest.mark.parametrize("field", ["runNum", "scanNum", "subjectName"])
def test_missing_required_field_names_field_and_file(tmp_path, field):
    lines = [line for line in GOOD.splitlines() if not line.startswith(field)]
    path = write(tmp_path, "bad.toml", "\n".join(lines))
    with pytest.raises(ConfigError) as info:
        loadConfigFile(path)
    assert field in str(info.value) and str(path) in str(info.value)
    assert info.value.field == field
    assert isinstance(info.value, ValidationError) and isinstance(info.value, InvocationError)


def test_wrong_types_are_rejected_with_a_fix(tmp_path):
    path = write(tmp_path, "bad.toml", GOOD.replace("runNum = [1, 2]", "runNum = 1"))
    with pytest.raises(ConfigError, match=r"runNum.*must be a list.*runNum = \[1\]"):
        loadConfigFile(path)
    path = write(tmp_path, "bad2.toml", 'plotXRangeLow = "zero"\n' + GOOD)
    with pytest.raises(ConfigError, match="plotXRangeLow"):
        loadConfigFile(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        loadConfigFile(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=".toml or .json"):
        loadConfigFile(write(tmp_path, "exp.yaml", "a: 1"))
    with pytest.raises(ConfigError, match="cannot parse"):
        loadConfigFile(write(tmp_path, "broken.toml", "runNum = [1,"))
    with pytest.raises(ConfigError, match="top level"):
        loadConfigFile(write(tmp_path, "list.json", "[1, 2]"))
