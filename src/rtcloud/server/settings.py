"""The experiment settings the web page edits: read with their types and comments, saved back.

A TOML file is edited through tomlkit so that every comment and the key order survive a
save; a JSON file is rewritten with two-space indentation. Each value keeps its type: an
``int`` stays an int, a list stays a list, a ``bool`` a bool. A save is refused as a whole,
with a message per field, when a value has the wrong type or the result would miss a
required field; the file is then left untouched. Writes are atomic.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Comment, Item

from rtcloud.config import parse_config_text, validate_config
from rtcloud.errors import ConfigError
from rtcloud.structdict import StructDict

__all__ = ["SettingsFile", "value_type"]


def value_type(value: Any) -> str:
    """The settings page's name for the type of a config value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    return "str"


def _coerce(key: str, old: Any, new: Any) -> Any:
    """``new`` converted to the type of ``old``; ValueError with a message when impossible."""
    kind = value_type(old)
    if kind == "bool":
        if isinstance(new, bool):
            return new
        raise ValueError("must be true or false")
    if kind == "int":
        if isinstance(new, bool):
            raise ValueError("must be a whole number")
        if isinstance(new, int):
            return new
        if isinstance(new, float) and new.is_integer():
            return int(new)
        raise ValueError("must be a whole number")
    if kind == "float":
        if isinstance(new, bool) or not isinstance(new, (int, float)):
            raise ValueError("must be a number")
        return float(new)
    if kind == "str":
        if isinstance(new, str):
            return new
        raise ValueError("must be text")
    if kind == "list":
        if not isinstance(new, list):
            raise ValueError("must be a list")
        return new
    if kind == "table":
        if new != old:
            raise ValueError("tables are not editable on the page; edit the file")
        return old
    raise ValueError("cannot be edited")


class SettingsFile:
    """One experiment config file, as the settings page sees and saves it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._is_json = self.path.suffix.lower() == ".json"

    def _read_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"experiment config {str(self.path)!r} does not exist", path=str(self.path)
            ) from None

    def load(self) -> StructDict:
        """The config as scripts see it (validated)."""
        cfg = parse_config_text(self._read_text(), self.path.suffix.lower(), source=str(self.path))
        validate_config(cfg, source=str(self.path))
        return cfg

    def items(self) -> list[dict[str, Any]]:
        """Every top-level setting in file order: ``{key, value, type, comment}``."""
        text = self._read_text()
        if self._is_json:
            data = json.loads(text)
            return [
                {"key": k, "value": v, "type": value_type(v), "comment": ""}
                for k, v in data.items()
            ]
        doc = tomlkit.parse(text)
        out: list[dict[str, Any]] = []
        pending: list[str] = []
        for key, item in doc.body:
            if key is None:
                if isinstance(item, Comment):
                    pending.append(item.trivia.comment.lstrip("#").strip())
                else:
                    pending = []
                continue
            assert isinstance(item, Item)
            trailing = item.trivia.comment.lstrip("#").strip() if item.trivia.comment else ""
            comment = " ".join(part for part in [*pending, trailing] if part)
            value = item.unwrap()
            out.append(
                {"key": key.key, "value": value, "type": value_type(value), "comment": comment}
            )
            pending = []
        return out

    def save(self, values: dict[str, Any]) -> None:
        """Apply ``values`` (key -> new value) and write the file, or raise ConfigError.

        On error nothing is written; ``ConfigError.errors`` maps each bad key to a message.
        """
        with self._lock:
            text = self._read_text()
            errors: dict[str, str] = {}
            if self._is_json:
                data = json.loads(text)
                current = dict(data)
            else:
                doc = tomlkit.parse(text)
                current = doc.unwrap()
            updated: dict[str, Any] = {}
            for key, new in values.items():
                if key not in current:
                    errors[key] = "is not a setting of this experiment (add it to the file)"
                    continue
                try:
                    updated[key] = _coerce(key, current[key], new)
                except ValueError as exc:
                    errors[key] = str(exc)
            merged = {**current, **updated}
            if not errors:
                try:
                    cfg = parse_config_text(json.dumps(merged), ".json", source=str(self.path))
                    validate_config(cfg, source=str(self.path))
                except ConfigError as exc:
                    errors[exc.field or "config"] = str(exc)
            if errors:
                raise ConfigError(
                    "settings not saved: "
                    + "; ".join(f"{key} {msg}" for key, msg in errors.items()),
                    path=str(self.path),
                    errors=errors,
                )
            if self._is_json:
                new_text = json.dumps(merged, indent=2) + "\n"
            else:
                for key, value in updated.items():
                    if doc[key] != value:
                        doc[key] = value
                new_text = tomlkit.dumps(doc)
            _atomic_write(self.path, new_text)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
