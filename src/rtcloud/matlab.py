"""MATLAB ``.mat`` experiment files: loaded with scipy.io, read as MatlabStructDict.

A ``.mat`` file saved from a MATLAB struct (``save('cfg.mat', '-struct', ...)`` or
``save('cfg.mat', 'cfg')``) loads with :func:`loadMatFile` into a
:class:`MatlabStructDict`: when the file holds one struct, its fields read as attributes
(``cfg.TR``), MATLAB's 1x1 arrays read as plain values, and a number assigned to a field is
stored the way MATLAB would save it (a 1x1 array). RT-Cloud's names are kept.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from rtcloud.structdict import StructDict

__all__ = [
    "MatlabStructDict",
    "convertStructuredArrayToDict",
    "isStructuredArray",
    "loadMatFile",
    "loadMatFileFromBuffer",
    "parseMatlabStruct",
]

_MAT_HEADER_KEYS = ("__header__", "__version__", "__globals__")


def isStructuredArray(var: Any) -> bool:
    """Whether ``var`` is a numpy structured array (what scipy makes of a MATLAB struct)."""
    return isinstance(var, np.ndarray) and var.dtype.names is not None


def convertStructuredArrayToDict(sArray: np.ndarray) -> dict[str, Any]:
    """The fields of a 1x1 structured array as a dict of their values."""
    if sArray.size != 1:
        raise ValueError(
            f"only a single MATLAB struct (1x1) can become a dict, this is {sArray.shape}"
        )
    record = sArray.reshape(-1)[0]
    return {name: record[name] for name in sArray.dtype.names or ()}


def _unwrap(value: Any) -> Any:
    """MATLAB's 1x1 arrays as the value they hold; anything else as it is."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.names is None:
        return value.reshape(-1)[0]
    return value


def _as_matlab(value: Any) -> Any:
    """A Python number as MATLAB saves it: a 1x1 array (uint8 for 0..255)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        dtype = np.uint8 if 0 <= value <= 255 else np.int64
        return np.array([[value]], dtype=dtype)
    return np.array([[value]], dtype=np.float64)


class MatlabStructDict(StructDict):
    """The variables of a ``.mat`` file; with ``name``, that struct's fields read as
    attributes of the whole (``cfg.TR`` for ``cfg.patterns.TR`` when ``name='patterns'``)."""

    def __init__(self, dictionary: dict[str, Any], name: str | None = None) -> None:
        super().__init__(dictionary)
        object.__setattr__(self, "_struct_name", name)
        if name is not None:
            struct = dict.get(self, name)
            if isinstance(struct, np.ndarray) and isStructuredArray(struct):
                dict.__setitem__(self, name, convertStructuredArrayToDict(struct))

    def _struct(self) -> dict[str, Any] | None:
        name = object.__getattribute__(self, "_struct_name")
        if name is None:
            return None
        struct = dict.get(self, name)
        return struct if isinstance(struct, dict) else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        struct = self._struct()
        if struct is not None and name in struct:
            return _unwrap(struct[name])
        return _unwrap(self.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        struct = self._struct()
        if struct is not None:
            struct[name] = _as_matlab(value)
        else:
            self[name] = _as_matlab(value)

    def fields(self) -> list[str]:
        """The struct's field names (or the file's variables without a struct name)."""
        struct = self._struct()
        keys = struct.keys() if struct is not None else self.keys()
        return [k for k in keys if k not in _MAT_HEADER_KEYS]

    def copy(self) -> MatlabStructDict:
        return MatlabStructDict(dict(self), object.__getattribute__(self, "_struct_name"))

    def __repr__(self) -> str:
        return f"MatlabStructDict({dict.__repr__(self)})"


def parseMatlabStruct(top: dict[str, Any]) -> MatlabStructDict:
    """scipy's dict of a ``.mat`` file as a MatlabStructDict (named after its only struct)."""
    variables = [k for k in top if k not in _MAT_HEADER_KEYS]
    if len(variables) == 1 and isStructuredArray(top[variables[0]]):
        return MatlabStructDict(top, variables[0])
    return MatlabStructDict(top)


def loadMatFile(filename: str | os.PathLike[str]) -> MatlabStructDict:
    """Load a MATLAB ``.mat`` file (v4 to v7.2) as a MatlabStructDict."""
    from scipy.io import loadmat

    if not os.path.isfile(filename):
        raise FileNotFoundError(f"loadMatFile: {os.fspath(filename)!r} does not exist")
    return parseMatlabStruct(loadmat(os.fspath(filename)))


def loadMatFileFromBuffer(data: bytes) -> MatlabStructDict:
    """A ``.mat`` file's bytes (from ``dataInterface.getFile``, say) as a MatlabStructDict."""
    from scipy.io import loadmat

    return parseMatlabStruct(loadmat(io.BytesIO(bytes(data))))
