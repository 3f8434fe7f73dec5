"""Experiment configuration files: load TOML or JSON into a StructDict and check them.

An experiment config must name ``subjectName`` and list ``runNum`` and ``scanNum``. Plot
settings (``title``, ``plotTitle``, axis labels, ranges, auto-range) are optional; missing ones
are filled with the defaults in :data:`PLOT_DEFAULTS`, and an axis whose range is not given
is auto-ranged. Every error names the file and the field, and says how to fix it.

TOML is read with tomlkit (which the settings page also uses to save edits back with their
comments), so Python 3.10 needs no extra parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError

from rtcloud.errors import ConfigError
from rtcloud.structdict import StructDict, recurseCreateStructDict

__all__ = [
    "PLOT_DEFAULTS",
    "REQUIRED_FIELDS",
    "loadConfigFile",
    "parse_config_text",
    "validate_config",
]

#: Fields every experiment config must have, with the type they must be.
REQUIRED_FIELDS: dict[str, type] = {"runNum": list, "scanNum": list, "subjectName": str}

#: Defaults for the optional plot settings.
PLOT_DEFAULTS: dict[str, Any] = {
    "title": "Real-Time Study",
    "plotTitle": "Value per TR",
    "plotXLabel": "TR #",
    "plotYLabel": "Value",
}

_PLOT_RANGES = ("plotXRangeLow", "plotXRangeHigh", "plotYRangeLow", "plotYRangeHigh")
_EXAMPLES = {
    "runNum": "runNum = [1]",
    "scanNum": "scanNum = [1]",
    "subjectName": 'subjectName = "subject01"',
}


def loadConfigFile(filename: str | Path) -> StructDict:
    """Load an experiment config (``.toml`` or ``.json``) into a :class:`StructDict`.

    Nested tables become StructDicts too; a missing key reads as None. Raises
    :class:`~rtcloud.errors.ConfigError` naming the file (and the field) when the file is
    missing, is not TOML/JSON, cannot be parsed, or lacks a required field.
    """
    path = Path(filename)
    if path.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(
            f"experiment config {str(path)!r} must be a .toml or .json file", path=str(path)
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"experiment config file {str(path)!r} does not exist; pass the path of your "
            "project's .toml file (e.g. --config conf/sample.toml)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read experiment config {str(path)!r}: {exc}", path=str(path)
        ) from exc
    cfg = parse_config_text(text, path.suffix.lower(), source=str(path))
    validate_config(cfg, source=str(path))
    return cfg


def parse_config_text(text: str, suffix: str, *, source: str = "<config>") -> StructDict:
    """Parse TOML or JSON text into a StructDict with plot defaults filled in (not validated)."""
    data: Any
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            data = tomlkit.parse(text).unwrap()
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"cannot parse experiment config {source!r}: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}",
            path=source,
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ParseError as exc:
        what = str(exc).rsplit(" at line ", 1)[0]
        raise ConfigError(
            f"cannot parse experiment config {source!r}: {what} at line {exc.line}, "
            f"column {exc.col + 1}",
            path=source,
            line=exc.line,
            column=exc.col + 1,
        ) from exc
    except TOMLKitError as exc:
        raise ConfigError(
            f"cannot parse experiment config {source!r}: {exc}", path=source
        ) from exc
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"experiment config {source!r} must hold a table of settings at the top level",
            path=source,
        )
    cfg: StructDict = recurseCreateStructDict(dict(data))
    for key, value in PLOT_DEFAULTS.items():
        cfg.setdefault(key, value)
    if cfg.get("plotAutoRangeX") is None:
        cfg["plotAutoRangeX"] = (
            cfg.get("plotXRangeLow") is None or cfg.get("plotXRangeHigh") is None
        )
    if cfg.get("plotAutoRangeY") is None:
        cfg["plotAutoRangeY"] = (
            cfg.get("plotYRangeLow") is None or cfg.get("plotYRangeHigh") is None
        )
    return cfg


def validate_config(cfg: Mapping[str, Any], *, source: str = "<config>") -> None:
    """Check the required fields and the types of the plot settings; raise ConfigError."""
    for field, kind in REQUIRED_FIELDS.items():
        if field not in cfg or cfg[field] is None:
            raise ConfigError(
                f"experiment config {source!r} is missing the required field {field!r}; "
                f"add a line such as: {_EXAMPLES[field]}",
                path=source,
                field=field,
            )
        value = cfg[field]
        if kind is list and not isinstance(value, list):
            raise ConfigError(
                f"field {field!r} in experiment config {source!r} must be a list, "
                f"e.g. {_EXAMPLES[field]} (found {value!r})",
                path=source,
                field=field,
            )
        if kind is str and not isinstance(value, str):
            raise ConfigError(
                f"field {field!r} in experiment config {source!r} must be a string, "
                f"e.g. {_EXAMPLES[field]} (found {value!r})",
                path=source,
                field=field,
            )
    for field in _PLOT_RANGES:
        value = cfg.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(
                f"field {field!r} in experiment config {source!r} must be a number "
                f"(found {value!r})",
                path=source,
                field=field,
            )
    for field in ("plotAutoRangeX", "plotAutoRangeY"):
        value = cfg.get(field)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(
                f"field {field!r} in experiment config {source!r} must be true or false "
                f"(found {value!r})",
                path=source,
                field=field,
            )
    for field in ("title", "plotTitle", "plotXLabel", "plotYLabel"):
        value = cfg.get(field)
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"field {field!r} in experiment config {source!r} must be a string "
                f"(found {value!r})",
                path=source,
                field=field,
            )
