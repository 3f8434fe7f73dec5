"""Values to bytes and back, for calls between processes: msgpack with a few extension types.

Bytes stay binary (msgpack ``bin``: no base64), nothing is ever pickled, and only these types
cross: None, bool, int, float, str, bytes (bytearray and memoryview arrive as bytes), list,
dict, and through extension types tuple, set, dicts with non-string keys, StructDict, numpy
arrays (any non-object dtype) and scalars, pydicom datasets (as DICOM bytes, file meta
included) and date/time values. Anything else raises :class:`~rtcloud.errors.ValidationError`
naming the type. Decoding checks every extension payload and raises
:class:`~rtcloud.errors.ProtocolError` on malformed input.

Pure module: no sockets, threads or clocks; numpy and pydicom are imported on first use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack

from rtcloud.errors import ProtocolError, ValidationError

__all__ = ["decode", "encode"]

EXT_NDARRAY = 1
EXT_NPSCALAR = 2
EXT_DICOM = 3
EXT_TUPLE = 4
EXT_SET = 5
EXT_STRUCTDICT = 6
EXT_DATETIME = 7
EXT_PAIRS = 8

#: Largest message decode() accepts (bytes).
MAX_MESSAGE = 4 << 30


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    if isinstance(obj, (set, frozenset)):
        return msgpack.ExtType(EXT_SET, _pack(list(obj)))
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(EXT_DATETIME, _pack(["datetime", obj.isoformat()]))
    if isinstance(obj, dt.date):
        return msgpack.ExtType(EXT_DATETIME, _pack(["date", obj.isoformat()]))
    if isinstance(obj, dt.time):
        return msgpack.ExtType(EXT_DATETIME, _pack(["time", obj.isoformat()]))
    module = type(obj).__module__
    if module.startswith("numpy"):
        import numpy as np

        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise ValidationError("numpy arrays of Python objects cannot be sent; convert them")
            array = np.ascontiguousarray(obj)
            return msgpack.ExtType(
                EXT_NDARRAY, _pack([array.dtype.str, list(array.shape), array.tobytes()])
            )
        if isinstance(obj, np.generic):
            return msgpack.ExtType(EXT_NPSCALAR, _pack([obj.dtype.str, obj.tobytes()]))
    if module.startswith("pydicom"):
        from pydicom.dataset import Dataset

        if isinstance(obj, Dataset):
            from rtcloud.imaging.dicom import write_dicom_bytes

            return msgpack.ExtType(EXT_DICOM, write_dicom_bytes(obj))
        from pydicom.valuerep import PersonName

        if isinstance(obj, PersonName):
            return str(obj)
        from pydicom.multival import MultiValue

        if isinstance(obj, MultiValue):
            return list(obj)
    from rtcloud.structdict import StructDict

    if isinstance(obj, StructDict):
        return msgpack.ExtType(EXT_STRUCTDICT, _pack(dict(obj)))
    if isinstance(obj, dict):
        return msgpack.ExtType(EXT_PAIRS, _pack([[k, v] for k, v in obj.items()]))
    if isinstance(obj, (int, float, str)):  # subclasses (IntEnum, DSfloat ...)
        return int(obj) if isinstance(obj, int) else (float(obj) if isinstance(obj, float) else str(obj))
    raise ValidationError(
        f"values of type {type(obj).__module__}.{type(obj).__qualname__} cannot be sent "
        "between processes; send bytes, numbers, strings, lists, dicts, numpy arrays or "
        "pydicom datasets"
    )


def _pack(value: Any) -> bytes:
    try:
        return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"cannot encode value: {exc}") from exc


def encode(value: Any) -> bytes:
    """msgpack bytes of ``value`` (see the module docstring for what may be sent)."""
    return _pack(value)


def _ext_hook(code: int, data: bytes) -> Any:
    try:
        if code == EXT_TUPLE:
            return tuple(_unpack(data))
        if code == EXT_SET:
            return set(_unpack(data))
        if code == EXT_PAIRS:
            return {_hashable(k): v for k, v in _unpack(data)}
        if code == EXT_STRUCTDICT:
            from rtcloud.structdict import StructDict

            return StructDict(_unpack(data))
        if code == EXT_DATETIME:
            kind, text = _unpack(data)
            parse = {"datetime": dt.datetime, "date": dt.date, "time": dt.time}[kind]
            return parse.fromisoformat(text)
        if code == EXT_NDARRAY:
            import numpy as np

            dtype_str, shape, raw = _unpack(data)
            dtype = np.dtype(dtype_str)
            if dtype.hasobject:
                raise ProtocolError("numpy object arrays are not accepted")
            count = 1
            for n in shape:
                count *= int(n)
            if count * dtype.itemsize != len(raw):
                raise ProtocolError("numpy array payload does not match its shape and dtype")
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if code == EXT_NPSCALAR:
            import numpy as np

            dtype_str, raw = _unpack(data)
            dtype = np.dtype(dtype_str)
            if dtype.hasobject or dtype.itemsize != len(raw):
                raise ProtocolError("malformed numpy scalar")
            return np.frombuffer(raw, dtype=dtype)[0]
        if code == EXT_DICOM:
            import io

            import pydicom

            return pydicom.dcmread(io.BytesIO(data))
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"malformed value of extension type {code}: {exc}") from exc
    raise ProtocolError(f"unknown extension type {code}")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True
    )


def decode(data: bytes) -> Any:
    """The value encoded in ``data``; ProtocolError when the bytes are not a valid encoding."""
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE}")
    try:
        return _unpack(data)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from exc
