"""StructDict: a dict whose keys read as attributes, and a missing key reads as None.

Experiment scripts written for RT-Cloud rely on both behaviours (``cfg.runNum``,
``if cfg.imgDir is None``). Nested dicts (also inside lists) become StructDicts too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StructDict", "copy_toplevel", "recurseCreateStructDict", "recurseSDtoDict"]


class StructDict(dict[str, Any]):
    """A dict with attribute access; reading a missing attribute gives None."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            # Keep Python's protocols (copy, pickle, numpy...) from seeing None for dunders.
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def copy(self) -> StructDict:
        return StructDict(self)

    def __repr__(self) -> str:
        return f"StructDict({dict.__repr__(self)})"


def recurseCreateStructDict(data: Any) -> Any:
    """Turn nested dicts (also inside lists and tuples) into StructDicts."""
    if isinstance(data, dict):
        return StructDict({key: recurseCreateStructDict(value) for key, value in data.items()})
    if isinstance(data, list):
        return [recurseCreateStructDict(item) for item in data]
    if isinstance(data, tuple):
        return tuple(recurseCreateStructDict(item) for item in data)
    return data


def recurseSDtoDict(data: Any) -> Any:
    """Turn StructDicts back into plain dicts; sets and tuples become lists."""
    if isinstance(data, dict):
        return {key: recurseSDtoDict(value) for key, value in data.items()}
    if isinstance(data, (list, tuple, set)):
        return [recurseSDtoDict(item) for item in data]
    return data


def copy_toplevel(data: dict[str, Any]) -> StructDict:
    """A shallow copy as a StructDict."""
    return StructDict(data)
