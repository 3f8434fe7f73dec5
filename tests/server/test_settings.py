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
        "advanced": "table",
    }
    comments = {i["key"]: i["comment"] for i in items}
    assert comments["title"] == "shown in the page header"
    assert comments["runNum"] == "runs to process"
    assert comments["trInterval"] == "seconds"


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


def test_json_configs_are_editable_too(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"subjectName": "s", "runNum": [1], "scanNum": [2], "alpha": 0.1}')
    settings = SettingsFile(path)
    settings.save({"alpha": 0.25})
    assert settings.load().alpha == 0.25
