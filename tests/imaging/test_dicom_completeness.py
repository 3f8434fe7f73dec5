"""Completeness of DICOM bytes, one case per bug found by walking pydicom's test files
(test_foreign_files.py walks them all): each of these failed before its fix."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from rtcloud.errors import InvalidDicomError
from rtcloud.imaging.completeness import dicom_is_complete, probe_dicom_bytes
from rtcloud.imaging.dicom import read_dicom_bytes

DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def image(transfer=pydicom.uid.ExplicitVRLittleEndian, **attributes) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def as_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def pixels(ds: Dataset) -> np.ndarray:
    return np.arange(int(ds.Rows) * int(ds.Columns), dtype=np.uint16).reshape(ds.Rows, ds.Columns)


def test_encapsulated_pixel_data_followed_by_trailing_padding_is_complete():
    ds = image()
    ds.PixelData = pixels(ds).tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.DataSetTrailingPadding = b"\0" * 64
    data = as_bytes(ds)
    assert dicom_is_complete(data)  # was never complete: the stream timed out
    assert (read_dicom_bytes(data).pixel_array == pixels(ds)).all()
    padding = data.rindex(b"\xfc\xff\xfc\xff")
    for cut in (padding - 4, padding + 2, padding + 12, len(data) - 1):
        assert not dicom_is_complete(data[:cut]), cut
    assert dicom_is_complete(data[:padding])  # cut between two elements: the whole image


def test_a_cut_after_fragment_bytes_that_look_like_the_delimiter_is_not_complete():
    fragment = b"\x11" * 40 + DELIMITER + b"\x22" * 40  # a codestream may hold any bytes
    ds = image(JPEG2000Lossless)
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    data = as_bytes(ds)
    fake = data.index(DELIMITER)
    assert fake < len(data) - 8
    for cut in range(fake + 4, fake + 9):
        assert not dicom_is_complete(data[:cut]), cut  # was complete at fake + 8
    assert dicom_is_complete(data)
    # inside the fragment, the prober tells how much must come before another look
    probe = probe_dicom_bytes(data[: fake + 8])
    assert probe.needed_size == len(data) and data[: probe.prefix_size].endswith(
        len(fragment).to_bytes(4, "little")
    )


def test_a_cut_inside_the_closing_delimiter_is_not_complete():
    ds = image(JPEG2000Lossless)
    ds.PixelData = encapsulate([b"\x33" * 64])
    ds["PixelData"].VR = "OB"
    data = as_bytes(ds)
    assert data.endswith(DELIMITER) and dicom_is_complete(data)
    for cut in range(len(data) - 8, len(data)):
        assert not dicom_is_complete(data[:cut]), cut  # was complete without the length


def test_uncompressed_ybr_full_422_is_complete_with_two_samples_a_pixel():
    ds = image(
        SamplesPerPixel=3,
        PhotometricInterpretation="YBR_FULL_422",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
    )
    ds.PixelData = bytes(range(8 * 8 * 2))  # Y Y Cb Cr for each two pixels
    data = as_bytes(ds)
    assert dicom_is_complete(data)  # was never complete: 3 samples a pixel expected
    assert read_dicom_bytes(data).pixel_array.shape == (8, 8, 3)
    assert not dicom_is_complete(data[:-1])


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # pydicom's, on decoding it
@pytest.mark.parametrize("value", ["1A", "x"])
def test_a_malformed_number_of_frames_is_an_invalid_dicom_error(value):
    ds = image(NumberOfFrames=1)
    ds.PixelData = pixels(ds).tobytes()
    data = as_bytes(ds).replace(b"IS\x02\x001 ", b"IS\x02\x00" + value.ljust(2).encode())
    assert b"IS\x02\x00" + value.ljust(2).encode() in data
    with pytest.raises(InvalidDicomError, match="NumberOfFrames"):  # was a bare ValueError
        read_dicom_bytes(data)
    assert probe_dicom_bytes(data).dataset is None


def test_native_pixel_data_cut_in_its_padding_or_in_what_follows_is_not_complete():
    ds = image(Rows=3, Columns=3, BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.PixelData = bytes(range(9)) + b"\0"  # odd length: padded to 10
    ds.DataSetTrailingPadding = b"\0" * 16
    data = as_bytes(ds)
    end = data.rindex(b"\xfc\xff\xfc\xff")
    assert dicom_is_complete(data) and dicom_is_complete(data[:end])
    assert not dicom_is_complete(data[: end - 1])  # the padding byte missing
    for cut in range(end + 1, len(data)):
        assert not dicom_is_complete(data[:cut]), cut
