"""Whether DICOM bytes hold a complete image, without decoding pixels.

A scanner writes a volume's file over some milliseconds. pydicom happily parses a file cut
short before its pixel data (it just has no ``PixelData``) or inside it (shorter
``PixelData``), so completeness is decided here: the pixel data must be present and as long
as ``Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames`` (for compressed
transfer syntaxes: the encapsulated sequence must be closed). No pixel decoding is needed.
:func:`probe_dicom_bytes` also tells, for a file cut short inside its pixel data, how many
bytes it needs before it can be complete, so that a watcher can skip re-parsing it until then.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydicom.dataelem import RawDataElement
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
]

_ENCAPSULATED_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_PIXEL_DATA = BaseTag(0x7FE00010)


_ROWS = BaseTag(0x00280010)
_COLUMNS = BaseTag(0x00280011)
_BITS_ALLOCATED = BaseTag(0x00280100)
_SAMPLES_PER_PIXEL = BaseTag(0x00280002)
_NUMBER_OF_FRAMES = BaseTag(0x00280008)


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


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    # fast path: the five values still raw and simple, as in a freshly parsed file
    rows, cols, bits = _raw_int(ds, _ROWS), _raw_int(ds, _COLUMNS), _raw_int(ds, _BITS_ALLOCATED)
    samples = _raw_int(ds, _SAMPLES_PER_PIXEL) if _SAMPLES_PER_PIXEL in ds._dict else 1
    frames = _raw_int(ds, _NUMBER_OF_FRAMES) if _NUMBER_OF_FRAMES in ds._dict else 1
    if (
        rows is not None
        and cols is not None
        and bits is not None
        and samples is not None
        and frames is not None
    ):
        return (rows * cols * (samples or 1) * (frames or 1) * bits + 7) // 8
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


@dataclass(frozen=True)
class DicomProbe:
    """What one parse of (possibly partial) DICOM bytes found out.

    ``dataset`` is the parsed dataset when the bytes are a complete image, else None and
    ``reason`` says why. For bytes cut short inside the pixel data, ``needed_size`` is the
    size the data must reach before it can be complete and ``prefix_size`` how many leading
    bytes decide that (everything up to the pixel data value): data that starts with the
    same ``prefix_size`` bytes and is shorter than ``needed_size`` is not complete either.
    """

    dataset: Dataset | None
    reason: str | None = None
    needed_size: int | None = None
    prefix_size: int | None = None


def probe_dataset(ds: Dataset, data: bytes) -> DicomProbe:
    """Completeness of a parsed dataset (see :class:`DicomProbe`)."""
    if _PIXEL_DATA not in ds._dict:
        return DicomProbe(None, "its pixel data is missing (file cut short?)")
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if transfer is not None and transfer.is_compressed:
        if not data.rstrip(b"\0").endswith(_ENCAPSULATED_END.rstrip(b"\0")):
            return DicomProbe(None, "its compressed pixel data is not closed (file cut short?)")
        return DicomProbe(ds)
    expected = _expected_pixel_bytes(ds)
    if expected is None:
        return DicomProbe(None, "it lacks Rows, Columns or BitsAllocated")
    raw = ds._dict.get(_PIXEL_DATA)
    if type(raw) is RawDataElement and isinstance(raw.value, bytes):
        got = len(raw.value)  # no need to decode the element for its length
    else:
        got = len(ds.PixelData)
    if got < expected:
        needed = prefix = None
        if (
            type(raw) is RawDataElement
            and isinstance(raw.value_tell, int)
            and raw.length != 0xFFFFFFFF
            and raw.value_tell + got == len(data)
        ):
            # cut short inside the pixel data: it cannot be complete before it holds the
            # smaller of the declared and the expected number of pixel bytes
            prefix = raw.value_tell
            needed = prefix + min(int(raw.length), expected)
        return DicomProbe(
            None, f"its pixel data has {got} of {expected} bytes (file cut short?)", needed, prefix
        )
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
