"""Whether DICOM bytes hold a complete image, without decoding pixels.

A scanner writes a volume's file over some milliseconds. pydicom happily parses a file cut
short before its pixel data (it just has no ``PixelData``), inside it (shorter
``PixelData``) or inside an element after it (a shorter last value, or no last element at
all), so completeness is decided here, from the parse and the bytes:

- the pixel data is there and whole: native data holds all the bytes its element declares,
  and at least ``Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames``
  (two samples a pixel for ``YBR_FULL_422``, whose chroma is subsampled); encapsulated
  (compressed) data is walked item by item, fragment lengths and all, up to its sequence
  delimiter, so bytes inside a fragment that look like the delimiter mean nothing;
- every element after it (trailing padding, say) is whole, and the bytes end where the last
  element ends (NUL bytes aside);
- for a deflated data set, where element positions are those of the inflated bytes, the
  deflate stream is finished.

A file cut exactly between two elements after its pixel data holds the whole image and
counts as complete. No pixel decoding is needed. :func:`probe_dicom_bytes` also tells, for a
file cut short inside its pixel data, how many bytes it needs before it can be complete, so
that a watcher can skip re-parsing it until then. ``tests/imaging/test_foreign_files.py``
checks all this against pydicom on every file pydicom and nibabel ship.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import cast

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from rtcloud.errors import InvalidDicomError
from rtcloud.imaging import dicom_read
from rtcloud.imaging.dicom_read import public_vr

__all__ = [
    "DicomProbe",
    "check_complete",
    "dicom_is_complete",
    "file_is_complete_dicom",
    "may_hold_pixel_data",
    "probe_dataset",
    "probe_dicom_bytes",
    "probe_dicom_parts",
]

_PIXEL_DATA = BaseTag(0x7FE00010)
_UNDEFINED = 0xFFFFFFFF
#: (FFFE,E000) item and (FFFE,E0DD) sequence delimiter, read as little-endian uint32.
_ITEM = 0xE000FFFE
_SEQUENCE_END = 0xE0DDFFFE
_TAG_LENGTH = struct.Struct("<II")
#: The sequence delimiter's tag as it appears in the bytes, by byte order.
_DELIMITER_BYTES = {True: b"\xfe\xff\xdd\xe0", False: b"\xff\xfe\xe0\xdd"}

_ROWS = BaseTag(0x00280010)
_COLUMNS = BaseTag(0x00280011)
_BITS_ALLOCATED = BaseTag(0x00280100)
_SAMPLES_PER_PIXEL = BaseTag(0x00280002)
_NUMBER_OF_FRAMES = BaseTag(0x00280008)
_PHOTOMETRIC = BaseTag(0x00280004)
#: Native colour data stored as Y Y Cb Cr for each two pixels: two samples a pixel.
_SUBSAMPLED = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422"})


def _raw_int(ds: Dataset, tag: BaseTag) -> int | None:
    """A single US or IS value read from its raw bytes (None: absent, or not that simple)."""
    elem = ds._dict.get(tag)
    if type(elem) is not RawDataElement or not isinstance(elem.value, bytes):
        return None
    value = elem.value
    vr = elem.VR if elem.VR is not None else public_vr(tag)
    if vr == "US" and len(value) == 2:
        return int.from_bytes(value, "little" if elem.is_little_endian else "big")
    if vr == "IS" and value.isascii():
        text = value.decode("ascii").strip(" \0")
        if text.isdigit():
            return int(text)
    return None


def _photometric(ds: Dataset) -> str:
    elem = ds._dict.get(_PHOTOMETRIC)
    if elem is None:
        return ""
    if type(elem) is RawDataElement and isinstance(elem.value, bytes):
        return elem.value.decode("ascii", "replace").strip(" \0")
    return str(ds.get("PhotometricInterpretation", "") or "").strip()


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of native pixel data the image needs (None: its size attributes are missing or
    not whole numbers, so it cannot be known)."""
    # fast path: the five values still raw and simple, as in a freshly parsed file
    rows, cols, bits = _raw_int(ds, _ROWS), _raw_int(ds, _COLUMNS), _raw_int(ds, _BITS_ALLOCATED)
    samples = _raw_int(ds, _SAMPLES_PER_PIXEL) if _SAMPLES_PER_PIXEL in ds._dict else 1
    frames = _raw_int(ds, _NUMBER_OF_FRAMES) if _NUMBER_OF_FRAMES in ds._dict else 1
    if rows is None or cols is None or bits is None or samples is None or frames is None:
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            bits = int(ds.BitsAllocated)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError, OverflowError):
            return None
    samples, frames = samples or 1, frames or 1
    if samples == 3 and _photometric(ds) in _SUBSAMPLED:
        samples = 2
    return (rows * cols * samples * frames * bits + 7) // 8


@dataclass(frozen=True)
class DicomProbe:
    """What one parse of (possibly partial) DICOM bytes found out.

    ``dataset`` is the parsed dataset when the bytes are a complete image, else None and
    ``reason`` says why. For bytes cut short inside the pixel data, ``needed_size`` is the
    size the data must reach before it can be complete and ``prefix_size`` how many leading
    bytes decide that: data that starts with the same ``prefix_size`` bytes and is shorter
    than ``needed_size`` is not complete either. For native pixel data the prefix is
    everything up to the pixel data value; for encapsulated data, everything up to the value
    of the fragment the bytes end in.
    """

    dataset: Dataset | None
    reason: str | None = None
    needed_size: int | None = None
    prefix_size: int | None = None
    #: the prefix ends where the value of native (uncompressed) pixel data begins, and that
    #: value ends the data at ``needed_size`` (see :func:`probe_dicom_parts`)
    prefix_is_pixel_value: bool = False


def _value_tell(elem: DataElement | RawDataElement) -> int | None:
    tell = elem.value_tell if type(elem) is RawDataElement else getattr(elem, "file_tell", None)
    return tell if isinstance(tell, int) else None


def _encapsulated(data: bytes, start: int) -> DicomProbe | int:
    """Walk the items of encapsulated pixel data whose value starts at ``start``: where the
    pixel data element ends (past its sequence delimiter), or why it is not complete."""
    size = len(data)
    at = start
    count = 0
    while at + 8 <= size:
        tag, length = _TAG_LENGTH.unpack_from(data, at)
        if tag == _SEQUENCE_END:
            return at + 8
        if tag != _ITEM or length == _UNDEFINED:
            return DicomProbe(
                None, f"its compressed pixel data holds something other than an item at {at}"
            )
        end = at + 8 + length
        if end > size:  # cut short inside this fragment
            return DicomProbe(
                None,
                f"its compressed pixel data is cut short inside fragment {count} "
                "(file cut short?)",
                end + 8,
                at + 8,
            )
        at = end
        count += 1
    return DicomProbe(None, "its compressed pixel data is not closed (file cut short?)")


def _element_end(elem: DataElement | RawDataElement, data: bytes) -> int | None:
    """Where an element read from ``data`` ends, -1 when its bytes were cut short, None when
    that is not known (a sequence pydicom has already decoded)."""
    tell = _value_tell(elem)
    if type(elem) is not RawDataElement or tell is None or not isinstance(elem.value, bytes):
        return None
    assert isinstance(elem, RawDataElement)
    if elem.length != _UNDEFINED:
        return tell + elem.length if len(elem.value) == elem.length else -1
    end = tell + len(elem.value) + 8  # the value, then its sequence delimiter
    delimiter = _DELIMITER_BYTES[bool(elem.is_little_endian)]
    return end if data[end - 8 : end - 4] == delimiter else -1


_TAIL_CUT = "it ends inside an element after its pixel data (file cut short?)"


def _tail(ds: Dataset, data: bytes, pixel_end: int) -> str | None:
    """Why the bytes after the pixel data are not whole (None: they are)."""
    elements = cast("dict[BaseTag, DataElement | RawDataElement]", ds._dict)
    last_tag = next(reversed(elements))
    end: int | None = pixel_end
    if last_tag != _PIXEL_DATA:
        end = _element_end(elements[last_tag], data)
    if end is None:  # a sequence pydicom decoded: it is whole if its delimiter is there
        return None if data.rstrip(b"\0")[-8:-4] in _DELIMITER_BYTES.values() else _TAIL_CUT
    if end < 0 or end > len(data) or data[end:].strip(b"\0"):
        return _TAIL_CUT
    return None


def _meta_end(data: bytes) -> int | None:
    """Where the file meta (explicit VR little endian group 2) of Part 10 bytes ends."""
    at = 132
    size = len(data)
    while at + 8 <= size:
        group, length = struct.unpack_from("<H4xH", data, at)
        if group != 2:
            return at
        if data[at + 4 : at + 6] in (
            b"OB",
            b"OD",
            b"OF",
            b"OL",
            b"OV",
            b"OW",
            b"SQ",
            b"UN",
            b"UT",
        ):
            if at + 12 > size:
                return None
            length = struct.unpack_from("<I", data, at + 8)[0] + 4
        at += 8 + length
    return None


def _deflated_whole(data: bytes) -> bool:
    """Whether the deflated data set after the file meta is a finished deflate stream.

    Some writers follow the stream with a gzip-style trailer (CRC-32 and size of the inflated
    bytes, 8 bytes): a file cut inside that trailer is not complete either."""
    start = _meta_end(data)
    if start is None:
        return False
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data[start:])
    except zlib.error:
        return False
    if not inflater.eof:
        return False
    rest = inflater.unused_data
    if 0 < len(rest) < 8:
        trailer = struct.pack("<II", zlib.crc32(inflated), len(inflated) & 0xFFFFFFFF)
        return not trailer.startswith(rest)
    return True


def probe_dataset(ds: Dataset, data: bytes) -> DicomProbe:
    """Completeness of a dataset freshly parsed from ``data`` (see :class:`DicomProbe`)."""
    elem = ds._dict.get(_PIXEL_DATA)
    if elem is None:
        return DicomProbe(None, "its pixel data is missing (file cut short?)")
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    deflated = transfer is not None and transfer.is_deflated
    if deflated and not _deflated_whole(data):
        return DicomProbe(None, "its deflated data set is cut short (file cut short?)")
    # positions in a deflated file are those of the inflated data set: no walk there
    tell = None if deflated else _value_tell(elem)
    value = elem.value
    if type(elem) is RawDataElement:
        declared: int | None = int(elem.length)
        undefined = declared == _UNDEFINED
    else:
        declared = None  # decoded already (not a fresh parse): its length is its value's
        undefined = bool(getattr(elem, "is_undefined_length", False))
    end: int | None = None
    if undefined:
        if tell is not None:
            walked = _encapsulated(data, tell)
            if isinstance(walked, DicomProbe):
                return walked
            end = walked
        elif not value:
            return DicomProbe(None, "its compressed pixel data is empty")
    else:
        expected = _expected_pixel_bytes(ds)
        if expected is None:
            return DicomProbe(
                None,
                "its Rows, Columns, BitsAllocated, SamplesPerPixel or NumberOfFrames are "
                "missing or not whole numbers",
            )
        got = len(value) if isinstance(value, (bytes, bytearray)) else 0
        if declared is None:
            declared = got
        if got < declared:
            needed = prefix = None
            if tell is not None and tell + got == len(data):
                # cut short inside the pixel data: not complete before it is all there
                prefix, needed = tell, tell + declared
            return DicomProbe(
                None,
                f"its pixel data has {got} of {declared} bytes (file cut short?)",
                needed,
                prefix,
                prefix is not None,
            )
        if got < expected:
            return DicomProbe(None, f"its pixel data has {got} bytes; the image needs {expected}")
        if tell is not None:
            end = tell + declared
    if end is not None:
        problem = _tail(ds, data, end)
        if problem is not None:
            return DicomProbe(None, problem)
    return DicomProbe(ds)


_PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
_PIXEL_TAG_BE = b"\x7f\xe0\x00\x10"
#: Transfer syntaxes whose data set is deflated: its tags are not visible in the bytes.
_DEFLATED_UIDS = (b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.95")


def may_hold_pixel_data(data: bytes, start: int = 0) -> bool:
    """False when ``data`` cannot parse to a dataset with pixel data, because it holds neither
    the tag of the pixel data (either byte order) nor the UID of a deflated transfer syntax.

    With ``start``, only the bytes from ``start`` on are searched (those before it are known
    to hold neither): for a file that grows, each check searches just what was added.
    """
    for needle in (_PIXEL_TAG_LE, _PIXEL_TAG_BE, *_DEFLATED_UIDS):
        if data.find(needle, max(0, start - len(needle) + 1)) != -1:
            return True
    return False


def probe_dicom_bytes(data: bytes) -> DicomProbe:
    """Parse ``data`` once and tell whether it is a complete DICOM image (never raises)."""
    try:
        ds = dicom_read.parse_dicom(bytes(data))
        return probe_dataset(ds, data)
    except InvalidDicomError as exc:
        return DicomProbe(None, str(exc))
    except Exception as exc:  # any parser surprise on a half-written file means: not yet
        return DicomProbe(None, f"not readable yet ({type(exc).__name__}: {exc})")


def probe_dicom_parts(head: bytes, pixels: bytes) -> DicomProbe:
    """:func:`probe_dicom_bytes` of ``head + pixels`` without joining them (never raises).

    For a file read in two parts: ``head`` up to the value of its native pixel data (as a
    probe with ``prefix_is_pixel_value`` found), ``pixels`` that value, to the file's end. When
    the dataset is such a file whose last element is that pixel data, its ``PixelData`` is
    ``pixels`` itself; anything else is probed joined.
    """
    try:
        ds = dicom_read.read_dicom_fast(head, pixel_data=pixels)
        if ds is not None:
            elements = cast("dict[BaseTag, DataElement | RawDataElement]", ds._dict)
            elem = elements.get(_PIXEL_DATA)
            expected = _expected_pixel_bytes(ds)
            if (
                type(elem) is RawDataElement
                and elem.value is pixels
                and elem.length == len(pixels)
                and _value_tell(elem) == len(head)
                and next(reversed(elements)) == _PIXEL_DATA
                and expected is not None
                and len(pixels) >= expected
            ):
                return DicomProbe(ds)
    except Exception:  # the general path below says what is wrong, if anything
        pass
    return probe_dicom_bytes(head + pixels)


def check_complete(ds: Dataset, data: bytes) -> Dataset:
    """``ds`` (parsed from ``data``) when it is a complete image, else InvalidDicomError."""
    probe = probe_dataset(ds, data)
    if probe.dataset is None:
        raise InvalidDicomError(
            f"DICOM data of {len(data)} bytes is incomplete: {probe.reason}; if a scanner is "
            "still writing it, wait until it is complete"
        )
    return ds


def dicom_is_complete(data: bytes) -> bool:
    """True when ``data`` is a complete DICOM image (never raises)."""
    return probe_dicom_bytes(data).dataset is not None


def file_is_complete_dicom(path: str | os.PathLike[str]) -> bool:
    """True when the file at ``path`` holds a complete DICOM image (never raises)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return dicom_is_complete(data)
