"""DICOM images as files and bytes: read a complete one, write one.

The jobs around a DICOM image each have their own module; this one is the entry point most
code wants, and it re-exports the names that used to live here:

- :mod:`rtcloud.imaging.dicom_read`: parsing bytes fast into pydicom's dataset;
- :mod:`rtcloud.imaging.completeness`: whether bytes hold a whole image yet;
- :mod:`rtcloud.imaging.anonymize`: removing what identifies a person;
- :mod:`rtcloud.imaging.dicom_write`: writing a dataset's bytes fast.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from pydicom.dataset import Dataset

from rtcloud.imaging import dicom_read
from rtcloud.imaging.anonymize import ATTRIBUTES_TO_ANONYMIZE, anonymize_dicom
from rtcloud.imaging.completeness import (
    DicomProbe,
    check_complete,
    dicom_is_complete,
    file_is_complete_dicom,
    may_hold_pixel_data,
    probe_dicom_bytes,
)
from rtcloud.imaging.dicom_write import settle_vrs_for_dcmwrite

__all__ = [
    "ATTRIBUTES_TO_ANONYMIZE",
    "DicomProbe",
    "anonymize_dicom",
    "dicom_is_complete",
    "file_is_complete_dicom",
    "looks_like_dicom",
    "may_hold_pixel_data",
    "probe_dicom_bytes",
    "read_dicom_bytes",
    "read_dicom_file",
    "write_dicom_bytes",
    "write_dicom_file",
]


def looks_like_dicom(data: bytes) -> bool:
    """True when the bytes start like a DICOM Part 10 file (``DICM`` at offset 128)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def read_dicom_bytes(data: bytes) -> Dataset:
    """Parse a complete DICOM image from bytes; InvalidDicomError if not DICOM or incomplete."""
    data = bytes(data)
    return check_complete(dicom_read.parse_dicom(data), data)


def read_dicom_file(path: str | os.PathLike[str]) -> Dataset:
    """Read a complete DICOM image from a file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"DICOM file {os.fspath(path)!r} does not exist") from None
    return read_dicom_bytes(data)


def write_dicom_bytes(ds: Dataset) -> bytes:
    """Serialize a dataset (with its file meta) to DICOM Part 10 bytes."""
    settle_vrs_for_dcmwrite(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=bool(getattr(ds, "file_meta", None)))
    return buffer.getvalue()


def write_dicom_file(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write a dataset to a DICOM file."""
    Path(path).write_bytes(write_dicom_bytes(ds))
