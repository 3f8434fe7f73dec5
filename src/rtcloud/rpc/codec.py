"""Values to msgpack and back, for calls between processes. Nothing is ever pickled.

What may cross, and what arrives:

==========================================  ==============================================
sent                                        received
==========================================  ==============================================
None, bool, int (any size), float, str      the same
bytes, bytearray, memoryview                bytes (never base64; large ones out of band)
list; tuple; set; frozenset                 list; tuple; set; frozenset
dict (any hashable keys), OrderedDict ...   dict (StructDict stays StructDict)
complex, datetime, date, time, timedelta    the same (a tz becomes a fixed UTC offset)
pathlib paths                               str (path flavours differ between systems)
numpy.ndarray (not object or structured)    a writable C-ordered ndarray of the same dtype
numpy scalars                               their Python value (``.item()``), as RT-Cloud did
pydicom Dataset                             a Dataset read back with ``dcmread`` (DICOM
                                            bytes with their file meta travel); PersonName
                                            and MultiValue arrive as str and list
nibabel.Nifti1Image                         a :class:`~rtcloud.imaging.nifti.VolumeImage`
                                            (same data, affine, header fields; ``sidecar``)
BidsIncremental (rtcloud.bids)              an equal BidsIncremental, rebuilt from its
                                            NIfTI bytes and plain metadata (by value)
subclasses of int, float, str, list, dict   the base type (IntEnum -> int, DSfloat -> float)
==========================================  ==============================================

Anything else raises :class:`~rtcloud.errors.SerializationError` (a ``TypeError``) naming
the type. Decoding validates every extension payload and raises
:class:`~rtcloud.errors.ProtocolError` for anything malformed; it never instantiates a type
named by the peer.

Large binary values (``bytes`` of at least ``oob_threshold`` bytes, array data, DICOM files)
go *out of band*: :func:`encode_parts` returns a small msgpack payload that refers to them by
index, plus the buffers themselves, uncopied. The protocol streams those buffers in chunks
and :func:`decode_parts` rebuilds each value from its received pieces with a single copy.
:func:`encode` / :func:`decode` wrap the same in one self-contained byte string (used by the
RPyC hop). Mutable buffers (bytearray, memoryview, arrays) are snapshotted when encoded, so
later changes by the caller cannot tear a message.

Pure module: no sockets, threads or clocks; it never imports asyncio, socket, threading,
time, rpyc, starlette or websockets. numpy and pydicom are imported only inside the
functions that decode their values (and recognised on encode only if already imported).
"""

from __future__ import annotations

import datetime as dt
import io
import pathlib
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack

from rtcloud.errors import ProtocolError, SerializationError

__all__ = [
    "MAX_BUFFERS",
    "MAX_DEPTH",
    "MAX_MESSAGE_SIZE",
    "OOB_THRESHOLD",
    "Buffer",
    "Encoded",
    "Spooled",
    "decode",
    "decode_parts",
    "encode",
    "encode_parts",
]

#: A piece of binary data as received or sent.
Buffer = bytes | bytearray | memoryview

#: Bytes values at least this long travel out of band (in chunks, uncopied).
OOB_THRESHOLD = 64 * 1024
#: (7FE0,0010) Pixel Data.
_PIXEL_DATA = 0x7FE00010
#: At most this many out-of-band buffers per value; any further ones go in band.
MAX_BUFFERS = 4095
#: Deepest nesting of containers and extension values accepted either way.
MAX_DEPTH = 64
#: Largest encoded value :func:`decode` accepts (2 GiB).
MAX_MESSAGE_SIZE = 2 << 30

# Extension type codes (msgpack application range 0..127). Never reuse a retired code.
EXT_TUPLE = 1
EXT_SET = 2
EXT_FROZENSET = 3
EXT_PAIRS = 4  # a dict whose keys are not all str: flat [k0, v0, k1, v1, ...]
EXT_STRUCTDICT = 5
EXT_NDARRAY = 6  # [dtype.str, shape, data: bin or out-of-band index]
EXT_DICOM = 7  # data: bin or out-of-band index; or [head, pixel data value], each the same
EXT_DATETIME = 8
EXT_DATE = 9
EXT_TIME = 10
EXT_TIMEDELTA = 11  # [days, seconds, microseconds]
EXT_COMPLEX = 12  # [real, imag]
EXT_BIGINT = 13  # two's complement, big endian
EXT_OOB_BYTES = 14  # index of an out-of-band buffer holding a bytes value
EXT_NIFTI = 15  # [348-byte header, affine as 16 floats, ndarray, sidecar dict or None]
EXT_BIDS_INCREMENTAL = 16  # BidsIncremental.to_wire(): NIfTI bytes + plain metadata

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_PLAIN = frozenset({str, float, bool, type(None)})
_MAX_NDIM = 32
_MAX_BIGINT_BYTES = 64 * 1024
# dtype strings accepted on decode: byte order, kind, item size, optional datetime unit.
_DTYPE_RE = re.compile(r"[<>|=][biufcmMSU][0-9]{1,5}(\[[0-9]{0,6}[a-zA-Z]{1,2}\])?")
_SUPPORTED = (
    "None, bool, int, float, complex, str, bytes, list, tuple, dict, set, datetime values, "
    "numpy arrays and scalars, pydicom datasets, StructDict and BidsIncremental"
)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------- encoding


class _Encoder:
    """Turns a value into a msgpack-ready tree; collects large buffers out of band."""

    __slots__ = ("buffers", "max_buffers", "max_depth", "oob_threshold")

    def __init__(self, oob_threshold: int, max_buffers: int, max_depth: int) -> None:
        self.buffers: list[memoryview] = []
        self.oob_threshold = oob_threshold
        self.max_buffers = max_buffers
        self.max_depth = max_depth

    def value(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t in _PLAIN:
            return v
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else self._bigint(v)
        if t is bytes:
            return self._bytes(v)
        if t is list:
            return self._seq(v, depth)
        if t is dict:
            return self._dict(v, depth)
        if t is tuple:
            return msgpack.ExtType(EXT_TUPLE, _pack(self._seq(v, depth)))
        return self._other(v, depth)

    def _enter(self, depth: int) -> int:
        if depth >= self.max_depth:
            raise SerializationError(
                f"value is nested more than {self.max_depth} levels deep; flatten it before "
                "sending it to another process"
            )
        return depth + 1

    def _seq(self, seq: list[Any] | tuple[Any, ...], depth: int) -> list[Any] | tuple[Any, ...]:
        inner = self._enter(depth)
        for item in seq:  # fast path: nothing to convert, msgpack packs it as is
            t = type(item)
            if t in _PLAIN or (t is int and _INT_MIN <= item <= _INT_MAX):
                continue
            return [self.value(x, inner) for x in seq]
        return seq

    def _dict(self, d: dict[Any, Any], depth: int) -> Any:
        inner = self._enter(depth)
        if all(type(k) is str for k in d):
            return {k: self.value(x, inner) for k, x in d.items()}
        flat: list[Any] = []
        for k, x in d.items():
            flat.append(self.value(k, inner))
            flat.append(self.value(x, inner))
        return msgpack.ExtType(EXT_PAIRS, _pack(flat))

    def _bigint(self, v: int) -> msgpack.ExtType:
        size = v.bit_length() // 8 + 1
        if size > _MAX_BIGINT_BYTES:
            raise SerializationError(f"an integer of {v.bit_length()} bits is too large to send")
        return msgpack.ExtType(EXT_BIGINT, v.to_bytes(size, "big", signed=True))

    def _blob(self, data: bytes) -> bytes | int:
        """In-band bytes, or the index of an out-of-band buffer for large ones."""
        if len(data) >= self.oob_threshold and len(self.buffers) < self.max_buffers:
            self.buffers.append(memoryview(data))
            return len(self.buffers) - 1
        return data

    def _bytes(self, data: bytes) -> Any:
        ref = self._blob(data)
        return ref if isinstance(ref, bytes) else msgpack.ExtType(EXT_OOB_BYTES, _pack(ref))

    def _other(self, v: Any, depth: int) -> Any:
        bids = sys.modules.get("rtcloud.bids.incremental")
        if bids is not None and isinstance(v, bids.BidsIncremental):
            inner = self._enter(depth)
            return msgpack.ExtType(EXT_BIDS_INCREMENTAL, _pack(self._dict(v.to_wire(), inner)))
        structdict = sys.modules.get("rtcloud.structdict")
        if structdict is not None and isinstance(v, structdict.StructDict):
            self._enter(depth)
            return msgpack.ExtType(EXT_STRUCTDICT, _pack(self._dict(dict(v), depth)))
        if isinstance(v, (bytearray, memoryview, bytes)):
            return self._bytes(v.tobytes() if isinstance(v, memoryview) else bytes(v))
        if isinstance(v, dict):
            return self._dict(dict(v), depth)
        if isinstance(v, int):  # bool cannot be subclassed; IntEnum, pydicom IS ...
            return self.value(int(v), depth)
        if isinstance(v, float):  # numpy.float64, pydicom DSfloat ...
            return float(v)
        if isinstance(v, str):
            return str.__str__(v)  # the plain str value, whatever __str__ says
        if isinstance(v, list):
            return self._seq(list(v), depth)
        if isinstance(v, tuple):  # named tuples arrive as plain tuples
            return msgpack.ExtType(EXT_TUPLE, _pack(self._seq(tuple(v), depth)))
        if isinstance(v, (set, frozenset)):
            code = EXT_FROZENSET if isinstance(v, frozenset) else EXT_SET
            return msgpack.ExtType(code, _pack(self._seq(list(v), depth)))
        if isinstance(v, dt.datetime):  # before date: datetime is a date
            return msgpack.ExtType(EXT_DATETIME, _pack(v.isoformat()))
        if isinstance(v, dt.date):
            return msgpack.ExtType(EXT_DATE, _pack(v.isoformat()))
        if isinstance(v, dt.time):
            return msgpack.ExtType(EXT_TIME, _pack(v.isoformat()))
        if isinstance(v, dt.timedelta):
            return msgpack.ExtType(EXT_TIMEDELTA, _pack([v.days, v.seconds, v.microseconds]))
        if isinstance(v, complex):
            return msgpack.ExtType(EXT_COMPLEX, _pack([v.real, v.imag]))
        if isinstance(v, pathlib.PurePath):
            return str(v)
        np = sys.modules.get("numpy")
        if np is not None:
            if isinstance(v, np.ndarray):
                return self._ndarray(v)
            if isinstance(v, np.generic):
                return self.value(v.item(), depth)
        if sys.modules.get("pydicom") is not None:
            converted = self._pydicom(v, depth)
            if converted is not None:
                return converted
        nibabel = sys.modules.get("nibabel")
        if nibabel is not None and isinstance(v, nibabel.Nifti1Image):
            return self._nifti(v, depth)
        raise SerializationError(
            f"a value of type {_type_name(v)} cannot be sent to another process; "
            f"supported are {_SUPPORTED}"
        )

    def _ndarray(self, array: Any) -> msgpack.ExtType:
        import numpy as np

        if isinstance(array, np.ma.MaskedArray):
            raise SerializationError(
                "masked numpy arrays cannot be sent; send array.filled(...) or the data and "
                "the mask as two arrays"
            )
        array = np.asarray(array)  # subclasses (memmap, matrix) travel as plain arrays
        dtype = array.dtype
        if dtype.hasobject or dtype.fields is not None or dtype.kind == "V" or not dtype.itemsize:
            raise SerializationError(
                f"numpy arrays of dtype {dtype} cannot be sent; use a numeric, bool, "
                "datetime or fixed-width string dtype (or a dict of arrays for records)"
            )
        ref = self._blob(array.tobytes(order="C"))
        return msgpack.ExtType(EXT_NDARRAY, _pack([dtype.str, list(array.shape), ref]))

    def _nifti(self, image: Any, depth: int) -> msgpack.ExtType:
        import numpy as np

        self._enter(depth)
        header = bytes(image.header.binaryblock)
        affine = [float(x) for x in np.asarray(image.affine, dtype=np.float64).ravel()]
        data = self._ndarray(np.asanyarray(image.dataobj))
        sidecar = getattr(image, "sidecar", None)
        sidecar = self._dict(dict(sidecar), depth + 1) if isinstance(sidecar, dict) else None
        return msgpack.ExtType(EXT_NIFTI, _pack([header, affine, data, sidecar]))

    def _pydicom(self, v: Any, depth: int) -> Any:
        from pydicom.dataset import Dataset
        from pydicom.multival import MultiValue
        from pydicom.valuerep import PersonName

        if isinstance(v, Dataset):
            pieces = _dicom_pieces(v)
            pixels = _pixel_value(v)
            if (
                len(pieces) > 1 and pieces[-1] is pixels and len(pieces[-1]) >= self.oob_threshold
            ):  # the pixels travel as their own buffer, so that no side copies them again
                head = b"".join(pieces[:-1])
                return msgpack.ExtType(
                    EXT_DICOM, _pack([self._blob(head), self._blob(pieces[-1])])
                )
            return msgpack.ExtType(EXT_DICOM, _pack(self._blob(b"".join(pieces))))
        if isinstance(v, PersonName):
            return str(v)
        if isinstance(v, MultiValue):
            return self._seq(list(v), depth)
        return None


def _dicom_pieces(ds: Any) -> list[bytes]:
    """The DICOM bytes of a dataset, in pieces whose join is the file."""
    import pydicom

    from rtcloud.imaging.dicom_write import settle_vrs_for_dcmwrite, write_dicom_pieces_fast

    # a dataset parsed from a file (and anonymized) is written fast, to the very bytes that
    # dcmwrite would write; anything else goes through dcmwrite
    fast = write_dicom_pieces_fast(ds)
    if fast is not None:
        return fast
    buffer = io.BytesIO()
    try:
        if int(pydicom.__version__.split(".")[0]) < 3:  # pragma: no cover - pydicom 2.x
            pydicom.dcmwrite(buffer, ds, write_like_original=True)
        elif _has_encoding(ds):
            settle_vrs_for_dcmwrite(ds)
            pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
        else:  # built in memory without file meta: explicit VR little endian, the default
            pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    except Exception as exc:
        raise SerializationError(
            f"this pydicom Dataset cannot be written as DICOM ({exc}); give it a file_meta "
            "with a TransferSyntaxUID, or send the file's bytes instead"
        ) from exc
    return [buffer.getvalue()]


def _pixel_value(ds: Any) -> bytes | None:
    """The ``bytes`` object holding a dataset's pixel data, if it has one."""
    elem = ds._dict.get(_PIXEL_DATA)
    value = getattr(elem, "value", None) if elem is not None else None
    return value if type(value) is bytes else None


def _has_encoding(ds: Any) -> bool:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return True
    return getattr(ds, "original_encoding", (None, None))[0] is not None


def _type_name(v: Any) -> str:
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class Encoded:
    """A value still in its encoded form: a payload and its out-of-band buffers, as pieces.

    A process that only passes a value on (the project server forwarding a data service's
    reply to a script) keeps it this way: it is neither decoded nor re-encoded, so a DICOM
    volume is parsed once, where it is used. :meth:`decode` rebuilds the value; encoding an
    ``Encoded`` (with :func:`encode_parts` or :func:`encode`) sends the same bytes on,
    uncopied where the transport allows. :meth:`of` encodes a value this way.
    """

    __slots__ = ("buffers", "payload")

    def __init__(self, payload: bytes, buffers: Sequence[Sequence[Buffer]] = ()) -> None:
        self.payload = payload
        self.buffers = tuple(tuple(pieces) for pieces in buffers)

    @classmethod
    def of(cls, value: Any) -> Encoded:
        """``value`` encoded (its large buffers referenced, not copied); as is if encoded."""
        if isinstance(value, Encoded):
            return value
        payload, buffers = encode_parts(value)
        return cls(payload, [(b,) for b in buffers])

    @property
    def nbytes(self) -> int:
        """Bytes of the payload and all buffers."""
        return len(self.payload) + sum(len(p) for pieces in self.buffers for p in pieces)

    def part_sizes(self) -> list[int]:
        """The size of the payload, then of each out-of-band buffer."""
        return [len(self.payload), *(sum(len(p) for p in pieces) for pieces in self.buffers)]

    def iter_part(self, index: int) -> Iterator[Buffer]:
        """The pieces of part ``index`` (0: the payload, then each buffer), in order."""
        return iter((self.payload,) if index == 0 else self.buffers[index - 1])

    def decode(self, *, max_depth: int = MAX_DEPTH) -> Any:
        """The value (ProtocolError when the encoding is malformed)."""
        return decode_parts(self.payload, self.buffers, max_depth=max_depth)

    def __repr__(self) -> str:
        return f"<Encoded value: {self.nbytes} bytes, {len(self.buffers)} buffers>"


def encode_parts(
    value: Any,
    *,
    oob_threshold: int = OOB_THRESHOLD,
    max_buffers: int = MAX_BUFFERS,
    max_depth: int = MAX_DEPTH,
) -> tuple[bytes, list[memoryview]]:
    """Encode ``value`` as a msgpack payload plus its out-of-band buffers (not copied).

    Raises:
        SerializationError: a type that cannot be sent, or nesting deeper than ``max_depth``.
    """
    if isinstance(value, Encoded):
        return value.payload, [
            memoryview(pieces[0]) if len(pieces) == 1 else memoryview(b"".join(pieces))
            for pieces in value.buffers
        ]
    encoder = _Encoder(oob_threshold, max_buffers, max_depth)
    tree = encoder.value(value, 0)
    try:
        payload = _pack(tree)
    except (ValueError, OverflowError, TypeError) as exc:  # msgpack's own limits
        raise SerializationError(f"value cannot be encoded: {exc}") from exc
    return payload, encoder.buffers


def encode(value: Any, *, max_depth: int = MAX_DEPTH) -> bytes:
    """One self-contained byte string holding ``value`` (large buffers copied once, at the end).

    Layout: msgpack uint ``n``, then ``n`` bytes of msgpack ``[payload, [buffer sizes]]``,
    then the out-of-band buffers back to back. An :class:`Encoded` value is written as it is.
    """
    if not isinstance(value, Encoded):
        payload, views = encode_parts(value, max_depth=max_depth)
        value = Encoded(payload, [(v,) for v in views])
    sizes = [sum(len(p) for p in pieces) for pieces in value.buffers]
    head = _pack([value.payload, sizes])
    return b"".join([_pack(len(head)), head, *(p for pieces in value.buffers for p in pieces)])


# ---------------------------------------------------------------------------------- decoding


class Spooled:
    """Base of a large binary value its receiver stored elsewhere as it arrived (a file).

    A transport may hand the decoder such an object as the single piece of an out-of-band
    buffer (see ``PartSink`` in :mod:`rtcloud.rpc.protocol`); a plain binary value then
    decodes as that object, and the method that receives it knows what to do with it.
    Any other use of the buffer (an array, a DICOM file) is a protocol error.
    """

    __slots__ = ("__weakref__",)


class _Decoder:
    """Rebuilds values from a payload; each out-of-band buffer may be used once."""

    __slots__ = ("buffers", "depth", "max_depth", "used")

    def __init__(self, buffers: Sequence[Sequence[Buffer]], max_depth: int) -> None:
        self.buffers = buffers
        self.used: set[int] = set()
        self.depth = 0
        self.max_depth = max_depth

    def unpack(self, data: Buffer) -> Any:
        return msgpack.unpackb(
            data,
            ext_hook=self.ext_hook,
            raw=False,
            use_list=True,
            strict_map_key=True,
            timestamp=3,  # msgpack's own timestamp type arrives as an aware datetime
        )

    def ext_hook(self, code: int, data: bytes) -> Any:
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise ProtocolError(f"value nested more than {self.max_depth} levels deep")
            handler = _EXT_HANDLERS.get(code)
            if handler is None:
                raise ProtocolError(f"unknown extension type {code} in a value")
            return handler(self, data)
        finally:
            self.depth -= 1

    def take(self, index: Any) -> Sequence[Buffer]:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise ProtocolError(
                f"value refers to out-of-band buffer {index!r}, which was not sent"
            )
        if index in self.used:
            raise ProtocolError(f"value refers to out-of-band buffer {index} twice")
        self.used.add(index)
        return self.buffers[index]

    def blob(self, ref: Any) -> Sequence[Buffer]:
        """The pieces of an in-band (bytes) or out-of-band (index) binary field."""
        if type(ref) is bytes:
            return (ref,)
        pieces = self.take(ref)
        if any(isinstance(piece, Spooled) for piece in pieces):
            raise ProtocolError(f"out-of-band buffer {ref} was stored aside; it is not an array")
        return pieces

    def items(self, data: bytes) -> list[Any]:
        items = self.unpack(data)
        if type(items) is not list:
            raise ProtocolError("malformed container value")
        return items

    def text(self, data: bytes) -> str:
        text = self.unpack(data)
        if type(text) is not str or len(text) > 64:
            raise ProtocolError("malformed date/time value")
        return text


def _join(pieces: Sequence[Buffer]) -> bytes:
    if len(pieces) == 1 and type(pieces[0]) is bytes:
        return pieces[0]
    return b"".join(pieces)


def _tuple(d: _Decoder, data: bytes) -> Any:
    return tuple(d.items(data))


def _set(d: _Decoder, data: bytes) -> Any:
    return set(d.items(data))


def _frozenset(d: _Decoder, data: bytes) -> Any:
    return frozenset(d.items(data))


def _pairs(d: _Decoder, data: bytes) -> Any:
    flat = d.items(data)
    if len(flat) % 2:
        raise ProtocolError("malformed dict value (odd number of keys and values)")
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _structdict(d: _Decoder, data: bytes) -> Any:
    from rtcloud.structdict import StructDict

    inner = d.unpack(data)
    if not isinstance(inner, dict):
        raise ProtocolError("malformed StructDict value")
    return StructDict(inner)


def _ndarray(d: _Decoder, data: bytes) -> Any:
    import numpy as np

    fields = d.items(data)
    if len(fields) != 3:
        raise ProtocolError("malformed numpy array value")
    dtype_str, shape, ref = fields
    if type(dtype_str) is not str or not _DTYPE_RE.fullmatch(dtype_str):
        raise ProtocolError(f"numpy dtype {dtype_str!r} is not accepted")
    if (
        type(shape) is not list
        or len(shape) > _MAX_NDIM
        or any(type(n) is not int or n < 0 for n in shape)
    ):
        raise ProtocolError("malformed numpy array shape")
    dtype = np.dtype(dtype_str)
    if dtype.hasobject or not dtype.itemsize:
        raise ProtocolError(f"numpy dtype {dtype_str!r} is not accepted")
    count = 1
    for n in shape:
        count *= n
    pieces = d.blob(ref)
    nbytes = sum(len(p) for p in pieces)
    if count * dtype.itemsize != nbytes:
        raise ProtocolError(
            f"numpy array data of {nbytes} bytes does not match shape {shape} and dtype {dtype}"
        )
    flat = np.empty(nbytes, dtype=np.uint8)
    pos = 0
    for piece in pieces:
        flat[pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        pos += len(piece)
    return flat.view(dtype).reshape(shape)


def _dicom(d: _Decoder, data: bytes) -> Any:
    import pydicom

    from rtcloud.imaging.dicom_read import read_dicom_fast

    ref = d.unpack(data)
    if type(ref) is list:  # the bytes before the pixel data's value, and that value
        if len(ref) != 2:
            raise ProtocolError("malformed DICOM value")
        head, pixels = _join(d.blob(ref[0])), _join(d.blob(ref[1]))
        fast = read_dicom_fast(head, pixel_data=pixels)
        if fast is not None:
            return fast
        raw = head + pixels
    else:
        raw = _join(d.blob(ref))
        fast = read_dicom_fast(raw)
        if fast is not None:
            return fast
    try:
        return pydicom.dcmread(io.BytesIO(raw), force=True)
    except Exception as exc:
        raise ProtocolError(f"a DICOM value could not be read: {exc}") from exc


def _nifti(d: _Decoder, data: bytes) -> Any:
    import nibabel as nib
    import numpy as np

    from rtcloud.imaging.nifti import VolumeImage

    parts = d.items(data)
    if (
        len(parts) != 4
        or type(parts[0]) is not bytes
        or len(parts[0]) != 348
        or type(parts[1]) is not list
        or len(parts[1]) != 16
        or any(type(x) is not float for x in parts[1])
        or not isinstance(parts[2], np.ndarray)
        or not (parts[3] is None or isinstance(parts[3], dict))
    ):
        raise ProtocolError("malformed NIfTI value")
    try:
        header = nib.Nifti1Header(binaryblock=parts[0], check=False)  # type: ignore[no-untyped-call]
        affine = np.array(parts[1], dtype=np.float64).reshape(4, 4)
        return VolumeImage(parts[2], affine, header, sidecar=parts[3])
    except Exception as exc:
        raise ProtocolError(f"a NIfTI value could not be read: {exc}") from exc


def _datetime(d: _Decoder, data: bytes) -> Any:
    return dt.datetime.fromisoformat(d.text(data))


def _date(d: _Decoder, data: bytes) -> Any:
    return dt.date.fromisoformat(d.text(data))


def _time(d: _Decoder, data: bytes) -> Any:
    return dt.time.fromisoformat(d.text(data))


def _timedelta(d: _Decoder, data: bytes) -> Any:
    parts = d.items(data)
    if len(parts) != 3 or any(type(p) is not int for p in parts):
        raise ProtocolError("malformed timedelta value")
    return dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _complex(d: _Decoder, data: bytes) -> Any:
    parts = d.items(data)
    if len(parts) != 2 or any(type(p) not in (int, float) for p in parts):
        raise ProtocolError("malformed complex value")
    return complex(parts[0], parts[1])


def _bigint(d: _Decoder, data: bytes) -> Any:
    if not data or len(data) > _MAX_BIGINT_BYTES:
        raise ProtocolError("malformed integer value")
    return int.from_bytes(data, "big", signed=True)


def _oob_bytes(d: _Decoder, data: bytes) -> Any:
    pieces = d.take(d.unpack(data))
    if len(pieces) == 1:
        piece: object = pieces[0]
        if type(piece) is bytearray or isinstance(piece, Spooled):
            return piece  # assembled or stored by the receiver (protocol._InStream): as it is
    return _join(pieces)


def _bids_incremental(d: _Decoder, data: bytes) -> Any:
    from rtcloud.bids.incremental import BidsIncremental

    form = d.unpack(data)
    if not isinstance(form, dict):
        raise ProtocolError("malformed BidsIncremental value")
    return BidsIncremental.from_wire(form)


_EXT_HANDLERS: dict[int, Any] = {
    EXT_TUPLE: _tuple,
    EXT_SET: _set,
    EXT_FROZENSET: _frozenset,
    EXT_PAIRS: _pairs,
    EXT_STRUCTDICT: _structdict,
    EXT_NDARRAY: _ndarray,
    EXT_DICOM: _dicom,
    EXT_NIFTI: _nifti,
    EXT_DATETIME: _datetime,
    EXT_DATE: _date,
    EXT_TIME: _time,
    EXT_TIMEDELTA: _timedelta,
    EXT_COMPLEX: _complex,
    EXT_BIGINT: _bigint,
    EXT_OOB_BYTES: _oob_bytes,
    EXT_BIDS_INCREMENTAL: _bids_incremental,
}


def decode_parts(
    payload: Buffer, buffers: Sequence[Sequence[Buffer]] = (), *, max_depth: int = MAX_DEPTH
) -> Any:
    """Rebuild a value from its payload and out-of-band buffers (each given as its pieces).

    Raises:
        ProtocolError: malformed payload, unknown extension, bad buffer reference, or a
            buffer that was sent but not used.
    """
    decoder = _Decoder(buffers, max_depth)
    try:
        value = decoder.unpack(payload)
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack, unicode, hashing and numpy errors on hostile input
        raise ProtocolError(f"malformed value: {type(exc).__name__}: {exc}") from exc
    if len(decoder.used) != len(buffers):
        raise ProtocolError(
            f"{len(buffers) - len(decoder.used)} out-of-band buffers were sent but not used"
        )
    return value


_UINT_WIDTHS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def uint_at(view: memoryview, pos: int) -> tuple[int, int] | None:
    """The msgpack unsigned integer at ``pos`` of ``view`` and the position after it, or None."""
    if pos >= len(view):
        return None
    first = view[pos]
    if first <= 0x7F:
        return first, pos + 1
    width = _UINT_WIDTHS.get(first)
    if width is None or pos + 1 + width > len(view):
        return None
    return int.from_bytes(view[pos + 1 : pos + 1 + width], "big"), pos + 1 + width


def decode(data: Buffer, *, max_size: int = MAX_MESSAGE_SIZE, max_depth: int = MAX_DEPTH) -> Any:
    """The value :func:`encode` put in ``data``.

    Raises:
        ProtocolError: ``data`` is not a valid encoding, or is larger than ``max_size``.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if len(view) > max_size:
        raise ProtocolError(f"encoded value of {len(view)} bytes is larger than {max_size}")
    prefix = uint_at(view, 0)
    if prefix is None:
        raise ProtocolError("malformed encoded value: bad header size")
    head_size, start = prefix
    if not 0 < head_size <= len(view) - start:
        raise ProtocolError("malformed encoded value: bad header size")
    try:
        head = msgpack.unpackb(view[start : start + head_size], raw=False, use_list=True)
    except Exception as exc:
        raise ProtocolError(f"malformed encoded value: {type(exc).__name__}: {exc}") from exc
    if (
        type(head) is not list
        or len(head) != 2
        or type(head[0]) is not bytes
        or type(head[1]) is not list
        or len(head[1]) > MAX_BUFFERS
        or any(type(n) is not int or n < 1 for n in head[1])
    ):
        raise ProtocolError("malformed encoded value: bad header")
    payload, sizes = head
    pos = start + head_size
    if sum(sizes) != len(view) - pos:
        raise ProtocolError("malformed encoded value: buffer sizes do not add up")
    buffers: list[tuple[memoryview]] = []
    for size in sizes:
        buffers.append((view[pos : pos + size],))
        pos += size
    return decode_parts(payload, buffers, max_depth=max_depth)
