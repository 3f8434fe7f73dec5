"""Parse DICOM bytes fast into the dataset ``pydicom.dcmread`` makes of them.

``dcmread`` of a Siemens EPI volume takes about a millisecond, and the script pays it for
every volume (the data service too, to check and anonymize it). Most of that goes into
reading the items of sequences (a ``Dataset`` per item, some 30 per Siemens volume) and into
per-element checks. :func:`read_dicom_fast` walks the element headers with ``struct`` and
builds the same ``FileDataset`` from the same ``RawDataElement`` records, through pydicom's own
constructors and encoding set-up, in a fifth of the time. Sequences stay raw (their value
bytes, as pydicom keeps any element it has not decoded yet) until first used: pydicom turns
a raw sequence into items on access, with the same items, offsets and encodings its reader
gives, so a script sees no difference except that it does not pay for sequences it never
looks at (tests/imaging/test_dicom_read.py compares both readers element by element, item by
item, and by the bytes ``dcmwrite`` writes of each).

:func:`decode_sequence` decodes a raw sequence the same way, for code that walks every item
(the anonymizer): the items ``ds[tag]`` makes, with the same values, encodings and offsets
(those of elements two levels deep aside, which pydicom itself counts differently depending on
when it decodes; nothing reads them), without pydicom's per-item reader, whose
``Dataset`` construction costs some 15 microseconds an item. Items are made from a template
taken from a real ``Dataset`` (fresh containers each time), so they carry exactly the
attributes pydicom's constructor gives.

The fast path covers Part 10 files (preamble and ``DICM``) in explicit VR little endian, the
transfer syntax scanners export for real-time use. Anything else returns None and the caller
uses ``dcmread``: pydicom before 3.0; implicit VR, big endian, deflated or compressed data;
a VR pydicom would have to guess; an undefined length outside a sequence; file meta or
delimiter tags in the data set; a value running past the end of the bytes (a file still
being written); any surprise at all. The fast path never raises.

:func:`parse_dicom` is what the rest of rtcloud calls: the fast path, else ``dcmread``, and
:class:`~rtcloud.errors.InvalidDicomError` for bytes neither can read. It does not check that
the image is complete (see :mod:`rtcloud.imaging.completeness`).

Pure module: no threads, sockets or files.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Any

import pydicom
import pydicom.hooks
from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import VR
from pydicom.values import convert_SQ, converters

from rtcloud.errors import InvalidDicomError

__all__ = ["decode_sequence", "parse_dicom", "public_vr", "read_dicom_fast"]

_PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3

_PREAMBLE = 128
_EXPLICIT_LE = b"1.2.840.10008.1.2.1"
_CHARSET = BaseTag(0x00080005)
_TRANSFER_SYNTAX = BaseTag(0x00020010)
_PIXEL_DATA = BaseTag(0x7FE00010)
_UNDEFINED = 0xFFFFFFFF

_HEADER = struct.Struct("<HH2sH")  # tag, explicit VR, 2-byte length
_TAG_LENGTH = struct.Struct("<HHI")  # tag and 4-byte length (items, delimiters)
_UL = struct.Struct("<I")

#: The VRs pydicom reads in explicit VR data, as the bytes in the file -> their str.
_VRS = {
    vr.encode("ascii"): vr
    for vr in (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM "
        "UC UI UL UN UR US UT UV"
    ).split()
}
#: VRs with two reserved bytes and a 4-byte length.
_LONG = frozenset(vr.encode("ascii") for vr in "OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())


def parse_dicom(data: bytes) -> Dataset:
    """The dataset of DICOM ``data`` (fast path, else ``dcmread``), complete or not.

    Raises InvalidDicomError when neither reader can parse the bytes.
    """
    fast = read_dicom_fast(data)
    if fast is not None:
        return fast
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (PydicomInvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidDicomError(
            f"not a readable DICOM file ({len(data)} bytes): {exc}; if a scanner is still "
            "writing it, wait until it is complete"
        ) from exc


@functools.lru_cache(maxsize=4096)
def public_vr(tag: int) -> str | None:
    """Dictionary VR of a public tag, None for unknown tags (pydicom then decodes as UN)."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


class _Refused(Exception):
    """These bytes are not ones the fast path reads exactly as ``dcmread`` does."""


def read_dicom_fast(data: bytes, pixel_data: bytes | None = None) -> FileDataset | None:
    """The dataset ``dcmread(io.BytesIO(data))`` returns, or None to use ``dcmread``.

    ``pixel_data``: the value of the pixel data element, when ``data`` stops right after that
    element's header (the file is ``data + pixel_data``). The element then holds this very
    object, uncopied (a large volume is not copied again on arrival), and the dataset's
    ``buffer`` holds ``data`` only.
    """
    if not _PYDICOM_3 or len(data) < _PREAMBLE + 4 or data[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        return None
    try:
        return _read(data, pixel_data)
    except Exception:  # refused, or anything unexpected: dcmread reads it, or says why not
        return None


def _read(data: bytes, pixel_data: bytes | None = None) -> FileDataset:
    meta_raw, end = _elements(data, _PREAMBLE + 4, len(data), meta=True)
    syntax = meta_raw.get(_TRANSFER_SYNTAX)
    if syntax is None or syntax.VR != "UI" or (syntax.value or b"").rstrip(b"\0 ") != _EXPLICIT_LE:
        raise _Refused("not explicit VR little endian")
    # as pydicom's file meta reader: a FileMetaDataset, its first element decoded
    file_meta = FileMetaDataset(meta_raw)
    file_meta.set_original_encoding(False, True, default_encoding)
    file_meta[next(iter(meta_raw))]
    file_meta.get("TransferSyntaxUID")

    raw, _ = _elements(data, end, len(data), meta=False, tail=pixel_data)
    # as pydicom's read_dataset
    dataset = Dataset(raw, parent_encoding=default_encoding)
    encoding: Any = default_encoding
    if _CHARSET in raw:
        charset = raw[_CHARSET]
        assert isinstance(charset, RawDataElement)
        encoding = convert_encodings(convert_raw_data_element(charset).value)
    dataset.set_original_encoding(False, True, encoding)
    # as pydicom's read_partial, reading from a BytesIO of the same bytes
    ds = FileDataset(io.BytesIO(data), dataset, data[:_PREAMBLE], file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


_Elements = dict[BaseTag, DataElement | RawDataElement]


def _elements(
    data: bytes,
    pos: int,
    end: int,
    *,
    meta: bool,
    item: bool = False,
    tail: bytes | None = None,
) -> tuple[_Elements, int]:
    """The raw elements from ``pos`` (file meta: only group 2); and where they stopped.

    ``item``: the contents of a sequence item, which may be empty, and end at ``end`` or at
    an item delimiter (returned as where they stopped). ``tail``: the value of a pixel data
    element whose header ends ``data`` (see :func:`read_dicom_fast`)."""
    out: _Elements = {}
    raw = RawDataElement
    unpack = _HEADER.unpack_from
    size = len(data)
    vrs = _VRS
    while pos < end:
        if pos + 8 > size:
            raise _Refused("a cut-off element header")
        group, number, vr_bytes, length = unpack(data, pos)
        if item and group == 0xFFFE and number == 0xE00D and pos + 8 <= end:
            return out, pos
        if meta != (group == 2):
            if meta:
                break
            raise _Refused("file meta elements in the data set")
        if group == 0xFFFE or group == 0:
            raise _Refused("a delimiter or command element in the data set")
        vr = vrs.get(vr_bytes)
        if vr is None:
            raise _Refused("a VR pydicom would have to guess")
        if vr_bytes in _LONG:
            if pos + 12 > size:
                raise _Refused("a cut-off element header")
            length = _UL.unpack_from(data, pos + 8)[0]
            start = pos + 12
        else:
            start = pos + 8
        tag = BaseTag(group << 16 | number)
        if length == _UNDEFINED:
            if vr != "SQ":
                raise _Refused("an undefined length outside a sequence")
            stop = _sequence_end(data, start)
            out[tag] = raw(tag, vr, length, data[start:stop], start, False, True, True, False)
            pos = stop + 8
            continue
        pos = start + length
        if pos > size:
            if tail is None or start != size or length != len(tail) or tag != _PIXEL_DATA:
                raise _Refused("a value running past the end of the data")
            out[tag] = raw(tag, vr, length, tail, start, False, True, True, False)
            tail = None
            pos = end
            break
        out[tag] = raw(tag, vr, length, data[start:pos], start, False, True, True, False)
    if tail is not None:
        raise _Refused("pixel data given apart, but no element for it")
    if not out and not item:
        raise _Refused("no elements")
    if pos != end and not meta:
        raise _Refused("elements running past their end")
    return out, pos


def _sequence_end(data: bytes, pos: int) -> int:
    """Offset of the delimiter that ends an undefined-length sequence whose items start at
    ``pos`` (the raw value is everything before it, as pydicom keeps such values)."""
    size = len(data)
    while pos + 8 <= size:
        group, number, length = _TAG_LENGTH.unpack_from(data, pos)
        if group != 0xFFFE:
            raise _Refused("a sequence holding something other than items")
        if number == 0xE0DD:
            return pos
        if number != 0xE000:
            raise _Refused("an unexpected delimiter in a sequence")
        pos = _item_end(data, pos + 8) + 8 if length == _UNDEFINED else pos + 8 + length
    raise _Refused("a sequence running past the end of the data")


def _item_end(data: bytes, pos: int) -> int:
    """Offset of the delimiter that ends an undefined-length item starting at ``pos``.

    The same walk as :func:`_elements` without making elements: sharing it costs 0.05 ms a
    Siemens volume (17 % of the read), which every script pays for every volume."""
    size = len(data)
    unpack = _HEADER.unpack_from
    while pos + 8 <= size:
        group, number, vr_bytes, length = unpack(data, pos)
        if group == 0xFFFE:
            if number == 0xE00D:
                return pos
            raise _Refused("an unexpected delimiter in an item")
        if vr_bytes not in _VRS:
            raise _Refused("a VR pydicom would have to guess")
        if vr_bytes in _LONG:
            if pos + 12 > size:
                break
            length = _UL.unpack_from(data, pos + 8)[0]
            start = pos + 12
        else:
            start = pos + 8
        if length == _UNDEFINED:
            if vr_bytes != b"SQ":
                raise _Refused("an undefined length outside a sequence")
            pos = _sequence_end(data, start) + 8
        else:
            pos = start + length
    raise _Refused("an item running past the end of the data")


# ------------------------------------------------------------------------------ sequences


def _item_template() -> dict[str, Any] | None:
    """The attributes ``Dataset(elements, parent_encoding=...)`` sets, or None if unsure."""
    marker: dict[BaseTag, Any] = {}
    probe = Dataset(marker, parent_encoding="probe")
    template = dict(vars(probe))
    if template.get("_dict") is not marker or template.get("_parent_encoding") != "probe":
        return None
    for value in template.values():
        if value is not None and type(value) not in (bool, int, str, dict, list):
            return None
    return template


_TEMPLATE = _item_template() if _PYDICOM_3 else None


def _new_item(elements: _Elements, encoding: Any) -> Dataset:
    item: Dataset = Dataset.__new__(Dataset)
    attributes = item.__dict__
    for name, value in _TEMPLATE.items():  # type: ignore[union-attr]
        attributes[name] = value.copy() if type(value) in (dict, list) else value
    attributes["_dict"] = elements
    attributes["_parent_encoding"] = encoding
    return item


def _pydicom_as_shipped() -> bool:
    """No callbacks, hooks or converters a user installed (the fast path would skip them)."""
    hooks = pydicom.hooks.hooks
    return (
        config.data_element_callback is None
        and not hooks.raw_element_kwargs
        and hooks.raw_element_vr is pydicom.hooks.raw_element_vr
        and hooks.raw_element_value is pydicom.hooks.raw_element_value
        and converters.get(VR.SQ) is convert_SQ
    )


def decode_sequence(ds: Dataset, tag: BaseTag) -> DataElement:
    """``ds[tag]`` for a sequence element, decoded fast when it is still raw."""
    raw = ds._dict.get(tag)
    if (
        _TEMPLATE is None
        or type(raw) is not RawDataElement
        or raw.VR != "SQ"
        or type(raw.value) is not bytes
        or raw.is_implicit_VR
        or not raw.is_little_endian
        or not _pydicom_as_shipped()
    ):
        return ds[tag]
    encoding = ds.original_character_set or ds._character_set
    try:
        items = _items(raw.value, raw.value_tell, encoding or [default_encoding])
    except Exception:  # refused or unexpected: pydicom decodes it, or says why not
        return ds[tag]
    sequence = Sequence(items)
    sequence.is_undefined_length = False  # as pydicom's decoding of raw sequences leaves it
    element = DataElement(
        tag, "SQ", sequence, raw.value_tell, raw.length == _UNDEFINED, already_converted=True
    )
    # as Dataset.__getitem__ does with what it decodes
    ds[tag] = element
    ds._set_pixel_representation(element)
    return element


def _items(data: bytes, offset: int, encoding: Any) -> list[Dataset]:
    """The items of a sequence value, as pydicom's ``convert_SQ`` reads them."""
    items: list[Dataset] = []
    pos, size = 0, len(data)
    while pos < size:
        if pos + 8 > size:
            raise _Refused("a cut-off item header")
        group, number, length = _TAG_LENGTH.unpack_from(data, pos)
        if group != 0xFFFE or number != 0xE000:
            raise _Refused("a sequence holding something other than items")
        start = pos + 8
        undefined = length == _UNDEFINED
        if undefined:
            elements, stop = _elements(data, start, size, meta=False, item=True)
            if stop >= size:
                raise _Refused("an item without its delimiter")
            after = stop + 8
        else:
            after = start + length
            if after > size:
                raise _Refused("an item running past the end of the sequence")
            elements, stop = _elements(data, start, after, meta=False, item=True)
            if stop != after:
                raise _Refused("an item delimiter inside an item of defined length")
        charset = elements.get(_CHARSET)
        item_encoding = encoding
        if isinstance(charset, RawDataElement):
            item_encoding = convert_encodings(convert_raw_data_element(charset).value)
        # pydicom guesses an item's VR encoding from the two bytes where its first VR would
        # be: an empty item (whose next bytes are a delimiter or the next item) counts as
        # implicit VR; one whose first element has a real VR was read as explicit above
        peek = data[start + 4 : start + 6]
        implicit = len(peek) == 2 and not (0x40 < peek[0] < 0x5B and 0x40 < peek[1] < 0x5B)
        if implicit and elements:
            raise _Refused("an item pydicom reads as implicit VR")
        item = _new_item(elements, encoding)
        item.set_original_encoding(implicit, True, item_encoding)
        attributes = item.__dict__  # plain attributes: what Dataset.__setattr__ does with them
        attributes["is_undefined_length_sequence_item"] = undefined
        attributes["seq_item_tell"] = attributes["file_tell"] = pos + offset
        items.append(item)
        pos = after
    return items
