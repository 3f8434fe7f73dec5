"""Serialize a parsed (and anonymized) pydicom dataset fast, to the bytes ``dcmwrite`` writes.

``pydicom.dcmwrite`` spends about 8 microseconds of Python per element (a buffer per element,
property look-ups, encoding checks), 1.2-1.5 ms for a Siemens volume of some 170 elements.
Almost all of that work is for nothing: an element pydicom has not decoded (a
``RawDataElement``) is written as its tag, VR and length followed by its value bytes *as they
are*. :func:`write_dicom_bytes_fast` writes those elements itself (a header packed with
``struct`` and the value bytes, never copied before the final join) and hands every decoded
element (``DataElement``) to pydicom's own ``write_data_element``, exactly as ``dcmwrite``
does; sequences are walked the way ``dcmwrite`` walks them (lengths, undefined-length items
and delimiters as recorded on the parsed sequence and items). The result is byte for byte
what ``dcmwrite(buffer, ds, enforce_file_format=False)`` writes (tests/imaging/
test_dicom_write.py checks this on the real Siemens series and on synthetic datasets built to
reach every path), including the recomputed (0002,0000) group length and the omission of
the retired group lengths (gggg,0000) of groups above 6.

Nothing is copied from the bytes the dataset was parsed from: a raw element already holds its
value bytes (pydicom reads each value into its own ``bytes``), and those are what ``dcmwrite``
writes, so splicing from the original would only add a comparison per element to find out
what is already known.

It returns None (the caller then uses ``dcmwrite``) whenever ``dcmwrite`` would do more than
write the elements as they are, or could fail: pydicom before 3.0; no file meta or a transfer
syntax other than implicit or explicit VR little endian (big endian, deflated, compressed,
private); a dataset not decoded in that encoding, or whose character set changed (``dcmwrite``
then decodes and re-encodes every element); a file meta not in explicit VR little endian or
with an unusual group length element; command set or file meta elements in the dataset; a
preamble that is not 128 bytes; pixel data that is not plain defined-length OB/OW bytes; a
raw element with a VR pydicom cannot write; or any error from pydicom. A sequence whose items
cannot be written that way (an item built in memory, say) is handed to pydicom whole.

It changes the dataset only as ``dcmwrite`` does: the (0008,0005) *Specific Character Set*
elements of the written datasets get decoded, and elements read lazily are read.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import struct
from collections.abc import MutableSequence
from typing import Any

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

__all__ = ["settle_vrs_for_dcmwrite", "write_dicom_bytes_fast"]

_PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: The raw value of (0002,0010) for the two transfer syntaxes, and whether each is implicit.
_RAW_SYNTAXES = {b"1.2.840.10008.1.2\0": True, b"1.2.840.10008.1.2.1\0": False}

_CHARSET = BaseTag(0x00080005)
_META_GROUP_LENGTH = BaseTag(0x00020000)
_TRANSFER_SYNTAX = BaseTag(0x00020010)
_UNDEFINED = 0xFFFFFFFF

_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"

_SHORT = struct.Struct("<HH2sH")  # explicit VR, 2-byte length
_LONG = struct.Struct("<HH2s2xI")  # explicit VR with 4-byte length (OB, OW, SQ, UN, UT ...)
_IMPLICIT = struct.Struct("<HHI")
_UL = struct.Struct("<I")

_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_PIXEL_VRS_EXPLICIT = frozenset({"OB", "OW"})
_PIXEL_VRS_IMPLICIT = frozenset({None, "OB", "OW", "OB or OW"})
_VR_BYTES: dict[str, bytes] = {}


class _Refused(Exception):
    """This dataset (or item) is not one the fast path writes exactly as dcmwrite does."""


def write_dicom_bytes_fast(ds: Dataset) -> bytes | None:
    """The bytes ``dcmwrite(buffer, ds, enforce_file_format=False)`` writes, written fast.

    None when the fast path does not apply (see the module docstring); the caller then
    writes with ``dcmwrite``.
    """
    pieces = write_dicom_pieces_fast(ds)
    return None if pieces is None else b"".join(pieces)


def write_dicom_pieces_fast(ds: Dataset) -> list[bytes] | None:
    """What :func:`write_dicom_bytes_fast` writes, as the pieces that make it up (joined, the
    same bytes); the pixel data's value is the dataset's own ``bytes`` object, uncopied.
    None when the fast path does not apply."""
    if not _PYDICOM_3:  # pragma: no cover - pydicom 2.x
        return None
    try:
        return _file_pieces(ds)
    except Exception:  # refused, or pydicom failed: dcmwrite writes it, or says why it cannot
        return None


def settle_vrs_for_dcmwrite(ds: Dataset) -> None:
    """Give every element of ``ds`` its VR when its bytes were read without one (implicit VR)
    but its transfer syntax has explicit VRs: ``dcmwrite`` writes by the transfer syntax and
    fails on a raw element without a VR (TypeError). Some writers put implicit VR data under
    an explicit transfer syntax (pydicom reads such files, warning); decoding each element
    gives it its dictionary VR, and the dataset is then written as its transfer syntax says.
    """
    meta = getattr(ds, "file_meta", None)
    transfer = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if transfer is None or not transfer.is_transfer_syntax or transfer.is_implicit_VR:
        return
    if any(type(elem) is RawDataElement and elem.VR is None for elem in ds._dict.values()):
        for _ in ds.iterall():  # decoding an element sets its VR, at every depth
            pass


def _file_pieces(ds: Dataset) -> list[bytes]:
    meta = ds.__dict__.get("file_meta")
    if meta is None or not isinstance(meta, Dataset):
        raise _Refused("no file meta")
    implicit = _transfer_syntax_is_implicit(meta)
    pieces: list[bytes] = []
    preamble = ds.__dict__.get("preamble")
    if preamble:
        if type(preamble) is not bytes or len(preamble) != 128:
            raise _Refused("unusual preamble")
        pieces.append(preamble)
        pieces.append(b"DICM")
    if meta._dict:
        pieces.extend(_meta_pieces(meta))
    keys = sorted(ds._dict, key=int)
    for tag in keys:  # dcmwrite refuses command set and file meta elements in the dataset
        if tag > 0x0002FFFF:
            break
        if tag >> 16 in (0, 2):
            raise _Refused("group 0 or 2 elements in the dataset")
    _Writer(implicit).dataset(pieces, ds, default_encoding, keys, top=True)
    return pieces


def _transfer_syntax_is_implicit(meta: Dataset) -> bool:
    """Implicit (True) or explicit (False) VR little endian; refused for anything else."""
    elem = meta._dict.get(_TRANSFER_SYNTAX)
    if type(elem) is RawDataElement:
        implicit = _RAW_SYNTAXES.get(elem.value) if type(elem.value) is bytes else None
        if implicit is not None and elem.VR == "UI":
            return implicit
    elif isinstance(elem, DataElement) and isinstance(elem.value, str):
        if elem.value == _EXPLICIT_LE:
            return False
        if elem.value == _IMPLICIT_LE:
            return True
    raise _Refused("not implicit or explicit VR little endian")


def _meta_pieces(meta: Dataset) -> list[bytes]:
    """The file meta as write_file_meta_info writes it (enforce_standard=False)."""
    keys = sorted(meta._dict, key=int)
    if keys[0] >> 16 != 2 or keys[-1] >> 16 != 2:
        raise _Refused("non-group-2 elements in the file meta")  # dcmwrite raises
    pieces: list[bytes] = []
    if keys[0] != _META_GROUP_LENGTH:
        _Writer(False).dataset(pieces, meta, default_encoding, keys, top=False)
        return pieces
    # dcmwrite writes the group length element, then the rest, then overwrites the first 12
    # bytes with the group length set to the size of the rest: that is exact only when the
    # element takes 12 bytes (VR UL, one 4-byte value)
    elem = meta._dict[_META_GROUP_LENGTH]
    if type(elem) is RawDataElement:
        simple = elem.VR == "UL" and type(elem.value) is bytes and len(elem.value) == 4
    else:
        simple = elem.VR == "UL" and type(elem.value) is int and 0 <= elem.value <= 0xFFFFFFFF
    if not simple:
        raise _Refused("unusual (0002,0000) group length element")
    _Writer(False).dataset(pieces, meta, default_encoding, keys[1:], top=False)
    rest = sum(map(len, pieces))
    return [_SHORT.pack(2, 0, b"UL", 4) + _UL.pack(rest), *pieces]


def _vr_bytes(vr: str | None) -> bytes:
    """The VR as dcmwrite writes it (``bytes(vr, "iso8859")``); refused where it raises."""
    if vr is None or len(vr) != 2:
        raise _Refused("raw element without a writable VR")
    encoded = _VR_BYTES[vr] = vr.encode("latin-1")
    return encoded


class _Writer:
    """Writes datasets in one encoding (little endian; implicit or explicit VR)."""

    __slots__ = ("implicit",)

    def __init__(self, implicit: bool) -> None:
        self.implicit = implicit

    def dataset(
        self,
        out: list[bytes],
        ds: Dataset,
        parent_encoding: str | list[str],
        keys: list[Any] | None = None,
        *,
        top: bool,
    ) -> None:
        """Append the elements of ``ds`` as write_dataset writes them."""
        implicit = self.implicit
        if ds.original_encoding != (implicit, True):
            raise _Refused("not decoded in this encoding")  # dcmwrite re-encodes every element
        elements = ds._dict
        if _CHARSET in elements:
            # exactly write_dataset's look-ups (they decode the element, as dcmwrite does)
            if ds.original_character_set != ds._character_set:
                raise _Refused("character set changed")
            encodings: Any = ds.get("SpecificCharacterSet", parent_encoding)
        else:
            if ds.original_character_set != ds._parent_encoding:
                raise _Refused("character set changed")
            encodings = parent_encoding
        if keys is None:
            keys = sorted(elements, key=int)  # int: BaseTag compares in Python
        append = out.append
        for tag in keys:
            group = tag >> 16
            number = tag & 0xFFFF
            if not number and group > 6:
                continue  # dcmwrite omits retired group lengths
            elem = elements[tag]
            if type(elem) is RawDataElement:
                value = elem.value
                if type(value) is not bytes:
                    self.pydicom(out, ds.get_item(tag), encodings)  # read lazily: as dcmwrite
                    continue
                undefined = elem.length == _UNDEFINED
                if group == 0x7FE0 and number == 0x0010:
                    if top:
                        self.pixel_data(out, tag, elem.VR, value, undefined)
                        continue
                    if undefined:
                        raise _Refused("undefined-length pixel data in an item")
                size = len(value)
                if implicit:
                    append(_IMPLICIT.pack(group, number, _UNDEFINED if undefined else size))
                else:
                    vr = elem.VR
                    vr_bytes = _VR_BYTES.get(vr) if vr is not None else None
                    if vr_bytes is None:
                        vr_bytes = _vr_bytes(vr)
                    if vr in _LONG_VRS:
                        append(
                            _LONG.pack(group, number, vr_bytes, _UNDEFINED if undefined else size)
                        )
                    elif undefined:  # dcmwrite writes what no reader reads back
                        raise _Refused("undefined length with a 2-byte length field")
                    elif size > 0xFFFF:  # pydicom writes it as UN (PS3.5 6.2.2), and warns
                        self.pydicom(out, elem, encodings)
                        continue
                    else:
                        append(_SHORT.pack(group, number, vr_bytes, size))
                if size:
                    append(value)
                if undefined:
                    append(_SEQUENCE_DELIMITER)
            elif type(elem) is DataElement:
                if elem.VR == "SQ" and type(elem.value) is Sequence:
                    self.sequence(out, ds, tag, elem, encodings)
                elif group == 0x7FE0 and number == 0x0010 and top:
                    value = elem.value
                    if type(value) is not bytes or elem.is_buffered:
                        raise _Refused("unusual pixel data")
                    self.pixel_data(out, tag, elem.VR, value, elem.is_undefined_length)
                else:
                    self.pydicom(out, elem, encodings)
            else:
                raise _Refused(f"unknown element type {type(elem).__name__}")

    def pixel_data(
        self, out: list[bytes], tag: int, vr: str | None, value: bytes, undefined: bool
    ) -> None:
        """Pixel data as dcmwrite writes it for an uncompressed transfer syntax: decoded, with
        ``is_undefined_length`` set to False, so OB/OW padded to an even length."""
        if undefined:
            raise _Refused("undefined-length pixel data in an uncompressed transfer syntax")
        size = len(value)
        pad = size & 1
        if self.implicit:
            if vr not in _PIXEL_VRS_IMPLICIT:
                raise _Refused("pixel data of an unusual VR")
            out.append(_IMPLICIT.pack(tag >> 16, tag & 0xFFFF, size + pad))
        else:
            if vr not in _PIXEL_VRS_EXPLICIT:
                raise _Refused("pixel data of an unusual VR")
            out.append(_LONG.pack(tag >> 16, tag & 0xFFFF, _vr_bytes(vr), size + pad))
        if size:
            out.append(value)
        if pad:
            out.append(b"\0")

    def sequence(
        self, out: list[bytes], ds: Dataset, tag: int, elem: DataElement, encodings: Any
    ) -> None:
        """A sequence as write_data_element and write_sequence_item write it; handed to
        pydicom whole when an item is not one to write here."""
        item_encodings = convert_encodings(encodings or [default_encoding])
        body: list[bytes] = []
        try:
            for item in elem.value:
                if not isinstance(item, Dataset):
                    raise _Refused("a sequence item that is not a dataset")
                start = len(body)
                body.append(b"")  # the item header, once its length is known
                self.dataset(body, item, item_encodings, top=False)
                if getattr(item, "is_undefined_length_sequence_item", False):
                    body[start] = _ITEM + b"\xff\xff\xff\xff"
                    body.append(_ITEM_DELIMITER)
                else:
                    body[start] = _ITEM + _UL.pack(sum(map(len, body[start + 1 :])))
        except _Refused:
            self.pydicom(out, elem, encodings)
            return
        undefined = elem.is_undefined_length
        size = _UNDEFINED if undefined else sum(map(len, body))
        if self.implicit:
            out.append(_IMPLICIT.pack(tag >> 16, tag & 0xFFFF, size))
        else:
            out.append(_LONG.pack(tag >> 16, tag & 0xFFFF, b"SQ", size))
        out.extend(body)
        if undefined:
            out.append(_SEQUENCE_DELIMITER)

    def pydicom(
        self,
        out: list[bytes],
        elem: DataElement | RawDataElement,
        encodings: str | MutableSequence[str] | None,
    ) -> None:
        """One element written by pydicom, as dcmwrite writes it."""
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = self.implicit
        write_data_element(fp, elem, encodings)  # type: ignore[arg-type]
        out.append(fp.getvalue())
