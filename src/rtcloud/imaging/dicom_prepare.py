"""Anonymize and encode a volume's header while the scanner is still writing its pixel data.

A scanner that writes a volume in place writes the header first and the pixel data last,
over some milliseconds. As soon as the watcher has seen the pixel data begin, everything
anonymization looks at is there: :func:`prepare_header` parses those leading bytes,
anonymizes them and writes them as DICOM, before the last byte arrives. When the file is
complete, :func:`finish_volume` checks that the leading bytes are still the very same and
appends the pixel data element, so that what remains to be done after the last byte is a
comparison and a copy, instead of a parse, an anonymization and a write.

The result is byte for byte what anonymizing the whole file and writing it gives
(tests/imaging/test_dicom_prepare.py checks this on the real Siemens series): anonymization
never reads or changes the pixel data, and the fast writer writes the pixel data element
last, on its own. Anything else is refused (None), and the caller does it the usual way:
a header the fast reader or writer does not take (see :mod:`rtcloud.imaging.dicom_read` and
:mod:`rtcloud.imaging.dicom_write`), pixel data that is not the last element of the file,
leading bytes that changed.

Pure module: no threads, sockets or files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rtcloud.imaging.anonymize import anonymize_dicom
from rtcloud.imaging.dicom_read import read_dicom_fast
from rtcloud.imaging.dicom_write import pixel_element_pieces, write_dicom_bytes_fast

__all__ = ["PreparedHeader", "finish_volume", "prepare_header"]

#: (7FE0,0010) in explicit VR little endian, followed by its VR and two reserved bytes.
_PIXEL_HEADER = struct.Struct("<HH2s2xI")
_PIXEL_TAG = (0x7FE0, 0x0010)


@dataclass(frozen=True)
class PreparedHeader:
    """The anonymized, encoded header of a volume whose pixel data was still being written.

    ``prefix``: the file's bytes up to the start of the pixel data value; ``encoded``: the
    anonymized header as DICOM (everything before the pixel data element); ``vr`` and
    ``length``: the pixel data element's VR and declared length.
    """

    prefix: bytes
    encoded: bytes
    vr: str
    length: int


def prepare_header(prefix: bytes) -> PreparedHeader | None:
    """Anonymize and encode the header in ``prefix`` (the bytes up to the pixel data value).

    None when the fast path does not apply.
    """
    start = len(prefix) - _PIXEL_HEADER.size
    if start <= 132:
        return None
    group, number, vr_bytes, length = _PIXEL_HEADER.unpack_from(prefix, start)
    if (group, number) != _PIXEL_TAG or vr_bytes not in (b"OB", b"OW") or length == 0xFFFFFFFF:
        return None
    header = read_dicom_fast(prefix[:start])
    if header is None:
        return None
    anonymize_dicom(header)
    encoded = write_dicom_bytes_fast(header)
    if encoded is None:
        return None
    return PreparedHeader(prefix, encoded, vr_bytes.decode("ascii"), length)


def finish_volume(prepared: PreparedHeader, data: bytes) -> bytes | None:
    """The anonymized volume as DICOM, from the prepared header and the complete file.

    None when ``data`` does not begin with the prepared bytes, or holds anything but the
    pixel data after them.
    """
    prefix = prepared.prefix
    if len(data) != len(prefix) + prepared.length or not data.startswith(prefix):
        return None
    pixels = pixel_element_pieces(prepared.vr, memoryview(data)[len(prefix) :])
    if pixels is None:
        return None
    return b"".join([prepared.encoded, *pixels])
