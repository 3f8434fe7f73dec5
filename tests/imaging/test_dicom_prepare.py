"""A header anonymized while the pixel data is written gives the very bytes of the usual way."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from dicom_cases import SECRETS, identifying_dataset, leaked
from pydicom.tag import BaseTag

from rtcloud.imaging.dicom import anonymize_dicom, read_dicom_bytes
from rtcloud.imaging.dicom_prepare import finish_volume, prepare_header
from rtcloud.imaging.dicom_read import read_dicom_fast
from rtcloud.rpc.codec import DicomBytes, decode, encode

PIXEL_DATA = BaseTag(0x7FE00010)


def as_file(ds) -> bytes:
    ds.preamble = b"\0" * 128
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def pixel_value_start(data: bytes) -> int:
    """Where the pixel data value starts, as the completeness check finds it."""
    parsed = read_dicom_fast(data)
    assert parsed is not None
    return int(parsed._dict[PIXEL_DATA].value_tell)


def usual_way(data: bytes) -> bytes:
    """What a data service sends of the volume without a head start: the anonymized dataset,
    encoded (its DICOM bytes are inside)."""
    return encode(anonymize_dicom(read_dicom_bytes(data)))


def test_real_siemens_volumes_give_the_bytes_of_the_usual_way(sample_dicom_dir: Path):
    files = sorted(p for p in sample_dicom_dir.iterdir() if p.is_file())
    assert files
    for path in files:
        data = path.read_bytes()
        prepared = prepare_header(data[: pixel_value_start(data)])
        assert prepared is not None
        volume = finish_volume(prepared, data)
        assert volume is not None
        assert encode(DicomBytes(volume)) == usual_way(data)
        # and the script gets the anonymized dataset from them
        received = decode(encode(DicomBytes(volume)))
        assert received == decode(usual_way(data))
        assert "PatientName" not in received or not str(received.PatientName)


def test_identifying_values_are_gone_and_odd_pixel_data_is_padded():
    ds = identifying_dataset()
    ds.PixelData = bytes(range(31))  # an odd length: written padded, as dcmwrite does
    ds.BitsAllocated = 8
    ds.Rows, ds.Columns = 1, 31
    data = as_file(ds)
    prepared = prepare_header(data[: pixel_value_start(data)])
    assert prepared is not None
    volume = finish_volume(prepared, data)
    assert volume is not None
    assert encode(DicomBytes(volume)) == usual_way(data)
    assert leaked([*SECRETS, "Doe^Jane"], volume) == []


def test_anything_else_is_left_to_the_usual_way():
    data = as_file(identifying_dataset())
    start = pixel_value_start(data)
    prepared = prepare_header(data[:start])
    assert prepared is not None
    assert finish_volume(prepared, data) is not None
    # the header changed after it was prepared
    changed = data[:200] + bytes([data[200] ^ 1]) + data[201:]
    assert finish_volume(prepared, changed) is None
    # not complete yet, or something after the pixel data
    assert finish_volume(prepared, data[:-1]) is None
    assert finish_volume(prepared, data + b"\xfc\xff\xfc\xffOB\0\0\0\0\0\0") is None
    # bytes that do not end at a pixel data value, or a header the fast reader refuses
    assert prepare_header(data[: start - 1]) is None
    assert prepare_header(data[:100]) is None
    implicit = as_file(identifying_dataset(implicit=True))
    assert prepare_header(implicit[: implicit.index(b"\xe0\x7f\x10\x00") + 8]) is None
