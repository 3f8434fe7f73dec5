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


_KIND_WORDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "list": "a list",
    "table": "a table",
}
_KIND_PLURALS = {
    "bool": "true/false values",
    "int": "whole numbers",
    "float": "numbers",
    "str": "texts",
    "list": "lists",
    "table": "tables",
}


def _coerce_scalar(kind: str, new: Any) -> Any:
    """``new`` as a value of ``kind`` (bool, int, float, str); ValueError when impossible."""
    if kind == "bool":
        if isinstance(new, bool):
            return new
    elif kind == "int":
        if isinstance(new, int) and not isinstance(new, bool):
            return new
        if isinstance(new, float) and new.is_integer():
            return int(new)
    elif kind == "float":
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif kind == "str":
        if isinstance(new, str):
            return new
    raise ValueError(f"must be {_KIND_WORDS.get(kind, 'unchanged')}")


def _element_kinds(old: list[Any]) -> list[Any]:
    """One template element per type found in ``old`` (in order of first appearance)."""
    seen: dict[str, Any] = {}
    for element in old:
        seen.setdefault(value_type(element), element)
    return list(seen.values())


def _like(old: Any, new: Any) -> Any:
    """``new`` converted to the shape and types of ``old``; ValueError saying what is wrong.

    Scalars keep their type (an int field takes 3 or 3.0, not 2.5 or "3"); the elements of a
    list must each have a type found among the file's elements of that list; a table may
    only have keys the file's table has, each value checked the same way.
    """
    kind = value_type(old)
    if kind == "list":
        if not isinstance(new, list):
            raise ValueError("must be a list")
        templates = _element_kinds(old)
        if not templates:
            return new  # an empty list in the file says nothing about its elements
        out = []
        for index, element in enumerate(new, start=1):
            for template in templates:
                try:
                    out.append(_like(template, element))
                    break
                except ValueError:
                    continue
            else:
                wanted = " or ".join(_KIND_PLURALS[value_type(t)] for t in templates)
                raise ValueError(
                    f"must be a list of {wanted}; item {index} ({json.dumps(element)}) is not"
                )
        return out
    if kind == "table":
        if not isinstance(new, dict):
            raise ValueError("must be a table")
        extra = sorted(set(new) - set(old))
        if extra:
            raise ValueError(f"has no key {extra[0]!r} in the file (add it to the file)")
        out_table = {}
        for name, value in new.items():
            try:
                out_table[name] = _like(old[name], value)
            except ValueError as exc:
                raise ValueError(f"{name} {exc}") from None
        return out_table
    return _coerce_scalar(kind, new)


def _coerce(key: str, old: Any, new: Any) -> Any:
    """``new`` converted to the type of ``old``; ValueError with a message when impossible."""
    if value_type(old) == "table" and new != old:
        raise ValueError("tables are not editable on the page; edit the file")
    return _like(old, new)


def _item(key: str, value: Any, comment: str, group: str | None) -> dict[str, Any]:
    return {
        "key": key,
        "value": value,
        "type": value_type(value),
        "itemType": item_type(value),
        "comment": comment,
        "group": group,
    }


def item_type(value: Any) -> str | None:
    """The type of a list's elements for the page's parser: one name, or None if mixed/empty."""
    if not isinstance(value, list):
        return None
    kinds = {value_type(v) for v in value}
    return kinds.pop() if len(kinds) == 1 else None


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

    def stamp(self) -> tuple[int, int, int] | None:
        """What changes when the file is written: (mtime in ns, size, inode), None if missing."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> StructDict:
        """The config as scripts see it (validated)."""
        cfg = parse_config_text(self._read_text(), self.path.suffix.lower(), source=str(self.path))
        validate_config(cfg, source=str(self.path))
        return cfg

    def items(self) -> list[dict[str, Any]]:
        """Every top-level setting in file order: ``{key, value, type, itemType, comment, group}``.

        ``comment`` is the comment at the end of the setting's line. ``group`` is None for a
        setting that continues the group above it; on the first setting of a group (after a
        blank line or a block of comment lines) it is that comment block, the heading of the
        settings up to the next blank line or comment, or ``""`` when there is none. A comment
        block that starts the file is the file's :meth:`header`, not a setting's.
        """
        if self._is_json:
            data = json.loads(self._read_text())
            return [
                _item(k, v, "", "" if i == 0 else None) for i, (k, v) in enumerate(data.items())
            ]
        out: list[dict[str, Any]] = []
        for key, value, comment, group in self._toml_entries()[1]:
            out.append(_item(key, value, comment, group))
        return out

    def header(self) -> str:
        """The comment block that starts the file (its description), or ``""``."""
        if self._is_json:
            return ""
        return self._toml_entries()[0]

    def _toml_entries(self) -> tuple[str, list[tuple[str, Any, str, str | None]]]:
        doc = tomlkit.parse(self._read_text())
        header = ""
        entries: list[tuple[str, Any, str, str | None]] = []
        pending: list[str] = []  # the comment lines read since the last setting
        new_group = True  # a blank line (or the file's start) since the last setting
        for key, item in doc.body:
            if key is None:
                if isinstance(item, Comment):
                    pending.append(item.trivia.comment.lstrip("#").strip())
                    continue
                if not entries and not header and pending:
                    header = " ".join(pending)  # the file's first lines, then a blank line
                pending, new_group = [], True
                continue
            assert isinstance(item, Item)
            if not entries and not header and pending:
                header = " ".join(pending)  # the file's first lines, right above a setting
                pending = []
            trailing = item.trivia.comment.lstrip("#").strip() if item.trivia.comment else ""
            group = " ".join(pending) if pending else ("" if new_group else None)
            entries.append((key.key, item.unwrap(), trailing, group))
            pending, new_group = [], False
        return header, entries

    def save(self, values: dict[str, Any]) -> list[str]:
        """Apply ``values`` (key -> new value) and write the file, or raise ConfigError.

        Returns the keys whose value changed. On error nothing is written;
        ``ConfigError.errors`` maps each bad key to a message.
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
            changed = [key for key, value in updated.items() if current[key] != value]
            if self._is_json:
                new_text = json.dumps(merged, indent=2) + "\n"
            else:
                for key in changed:
                    doc[key] = updated[key]
                new_text = tomlkit.dumps(doc)
            _atomic_write(self.path, new_text)
            return changed

    def write_copy(self, path: Path, values: dict[str, Any]) -> Path:
        """Write this config with ``values`` set (added when the file lacks them) to
        ``path``, comments kept; return ``path``. What a script started for one run reads,
        as RT-Cloud wrote ``cfg_sub<subject>_run<run>.toml`` beside the project's config."""
        with self._lock:
            text = self._read_text()
        if self._is_json:
            data = json.loads(text)
            data.update(values)
            new_text = json.dumps(data, indent=2) + "\n"
        else:
            doc = tomlkit.parse(text)
            for key, value in values.items():
                doc[key] = value
            new_text = tomlkit.dumps(doc)
        _atomic_write(path, new_text)
        return path


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
