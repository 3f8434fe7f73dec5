"""The settings the page edits: types and comments kept, bad saves refused whole."""

import pytest

from rtcloud.errors import ConfigError
from rtcloud.server.settings import SettingsFile

TOML = """# Experiment settings

title = "Study"  # shown in the page header
subjectName = "sub01"
# runs to process
runNum = [1]
scanNum = [13]
trInterval = 2.0 # seconds
numVolumes = 10
isSynthetic = false

roiY = [36, 48]
weights = [0.5, 1]
labels = ["face", "house"]
blocks = [{name = "rest", length = 10}]
[advanced]
depth = 3
"""


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(TOML)
    return SettingsFile(path)


def test_items_have_types_and_comments_in_file_order(settings):
    items = settings.items()
    assert [i["key"] for i in items] == [
        "title",
        "subjectName",
        "runNum",
        "scanNum",
        "trInterval",
        "numVolumes",
        "isSynthetic",
        "roiY",
        "weights",
        "labels",
        "blocks",
        "advanced",
    ]
    kinds = {i["key"]: i["type"] for i in items}
    assert kinds == {
        "title": "str",
        "subjectName": "str",
        "runNum": "list",
        "scanNum": "list",
        "trInterval": "float",
        "numVolumes": "int",
        "isSynthetic": "bool",
        "roiY": "list",
        "weights": "list",
        "labels": "list",
        "blocks": "list",
        "advanced": "table",
    }
    comments = {i["key"]: i["comment"] for i in items}
    assert comments["title"] == "shown in the page header"
    assert comments["trInterval"] == "seconds"
    # A comment block heads the settings below it (up to a blank line), not only the first;
    # the file's own header comment describes the file, not its first setting.
    groups = {i["key"]: i["group"] for i in items}
    assert groups["runNum"] == "runs to process" and comments["runNum"] == ""
    assert groups["scanNum"] is None and groups["isSynthetic"] is None
    assert groups["roiY"] == ""  # a new group after a blank line, with no heading
    assert groups["title"] == "" and comments["title"] == "shown in the page header"
    assert settings.header() == "Experiment settings"
    element_types = {i["key"]: i["itemType"] for i in items}
    assert element_types["roiY"] == "int" and element_types["labels"] == "str"
    assert element_types["weights"] is None  # mixed float and int


def test_a_header_right_above_the_first_setting_is_the_files(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('# My study\n# second line\ntitle = "x"\nsubjectName = "s"\n')
    settings = SettingsFile(path)
    assert settings.header() == "My study second line"
    assert settings.items()[0]["group"] == "" and settings.items()[0]["comment"] == ""


def test_save_keeps_comments_and_types(settings):
    settings.save({"numVolumes": 25, "trInterval": 1, "isSynthetic": True, "runNum": [1, 2]})
    text = settings.path.read_text()
    assert "# Experiment settings" in text and "# shown in the page header" in text
    assert "# runs to process" in text and "# seconds" in text
    cfg = settings.load()
    assert cfg.numVolumes == 25 and isinstance(cfg.numVolumes, int)
    assert cfg.trInterval == 1.0 and isinstance(cfg.trInterval, float)
    assert cfg.isSynthetic is True and cfg.runNum == [1, 2]


@pytest.mark.parametrize(
    "values, bad",
    [
        ({"numVolumes": "ten"}, "numVolumes"),
        ({"numVolumes": 2.5}, "numVolumes"),
        ({"isSynthetic": "yes"}, "isSynthetic"),
        ({"trInterval": "fast"}, "trInterval"),
        ({"runNum": "1"}, "runNum"),
        ({"subjectName": 5}, "subjectName"),
        ({"unknownKey": 1}, "unknownKey"),
        ({"advanced": {"depth": 4}}, "advanced"),
        ({"runNum": []}, "runNum"),
        ({"roiY": [36, "abc"]}, "roiY"),
        ({"roiY": [36, 40.5]}, "roiY"),
        ({"roiY": [True, 2]}, "roiY"),
        ({"labels": ["face", 3]}, "labels"),
        ({"weights": [0.5, "1"]}, "weights"),
        ({"blocks": [{"name": "rest", "length": "ten"}]}, "blocks"),
        ({"blocks": [{"name": "rest", "length": 10, "extra": 1}]}, "blocks"),
        ({"blocks": [3]}, "blocks"),
    ],
)
def test_bad_saves_change_nothing(settings, values, bad):
    before = settings.path.read_bytes()
    if bad == "runNum" and values["runNum"] == []:
        # an empty list is a list: the required-field check passes, the file is written
        settings.save(values)
        assert settings.load().runNum == []
        return
    with pytest.raises(ConfigError) as info:
        settings.save({"numVolumes": 11, **values})
    assert bad in info.value.errors
    assert settings.path.read_bytes() == before


def test_list_elements_are_checked_against_the_file_and_named(settings):
    before = settings.path.read_bytes()
    with pytest.raises(ConfigError) as info:
        settings.save({"roiY": [36, "abc"], "labels": ["a", 1]})
    assert info.value.errors == {
        "roiY": 'must be a list of whole numbers; item 2 ("abc") is not',
        "labels": "must be a list of texts; item 2 (1) is not",
    }
    assert "roiY must be a list of whole numbers" in str(info.value)
    assert settings.path.read_bytes() == before
    changed = settings.save(
        {
            "roiY": [30, 40.0],
            "weights": [1, 2.5],
            "labels": ["a"],
            "blocks": [{"name": "task", "length": 12}, {"name": "rest"}],
            "numVolumes": 10,
        }
    )
    assert changed == ["roiY", "weights", "labels", "blocks"]  # numVolumes was 10 already
    cfg = settings.load()
    assert cfg.roiY == [30, 40] and all(type(v) is int for v in cfg.roiY)
    assert cfg.weights == [1, 2.5] and cfg.labels == ["a"]
    assert cfg.blocks[0].length == 12 and cfg.blocks[1] == {"name": "rest"}
    assert settings.save({"numVolumes": 10}) == []


def test_json_configs_are_editable_too(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"subjectName": "s", "runNum": [1], "scanNum": [2], "alpha": 0.1}')
    settings = SettingsFile(path)
    settings.save({"alpha": 0.25})
    assert settings.load().alpha == 0.25
