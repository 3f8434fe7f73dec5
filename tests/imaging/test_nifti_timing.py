"""Mosaic to NIfTI with the right affine, mosaic cutting, and TR timing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from rtcloud.errors import StateError, ValidationError
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.nifti import (
    convertDicomFileToNifti,
    convertDicomImgToNifti,
    parseDicomVolume,
    readNifti,
)
from rtcloud.imaging.timing import (
    dicomTimeToNextTr,
    getDicomAcquisitionTime,
    getDicomRepetitionTime,
    getTimeToNextTR,
)
from rtcloud.simulate.synthetic import activation_roi, generate_series


def test_real_mosaic_becomes_64x64x27_and_round_trips_through_a_file(sample_dicom_dir, tmp_path):
    # (the affine and voxel order are checked against dcm2niix in test_nifti_dcm2niix.py)
    ds = read_dicom_file(sample_dicom_dir / "001_000013_000000.dcm")
    image = convertDicomImgToNifti(ds)
    assert image.shape == (64, 64, 27)
    # 3 x 3 mm in plane, 4 mm between slices (with a small oblique tilt)
    zooms = np.sqrt((image.affine[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(zooms, [3, 3, 4], atol=0.01)
    # parseDicomVolume cuts the same tiles, in DICOM's (row, column) order: the NIfTI image
    # has i along a row and j up the rows. Like RT-Cloud's, it keeps every tile of the 6x6
    # mosaic (scripts index it with masks made that way): the 9 after the last slice are
    # empty. RT-Cloud's cut, written out tile by tile as its code does:
    tiles = parseDicomVolume(ds, 64)
    assert tiles.shape == (64, 64, 36)
    pixels = ds.pixel_array
    for tile in range(36):
        r, c = divmod(tile, 6)
        block = pixels[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64]
        np.testing.assert_array_equal(tiles[:, :, tile], block)
    assert not tiles[:, :, 27:].any()
    np.testing.assert_array_equal(tiles[:, :, :27].transpose(1, 0, 2)[:, ::-1], image.get_fdata())
    out = tmp_path / "vol.nii"
    convertDicomFileToNifti(sample_dicom_dir / "001_000013_000000.dcm", out)
    again = readNifti(out)
    np.testing.assert_array_equal(again.get_fdata(), image.get_fdata())
    np.testing.assert_allclose(again.affine, image.affine, atol=1e-5)


def test_synthetic_series_converts_with_its_geometry_and_shows_the_blocks(tmp_path):
    paths = generate_series(tmp_path, num_volumes=21, shape=(64, 64, 30), block=10)
    images = [convertDicomImgToNifti(read_dicom_file(p)) for p in paths]
    assert images[0].shape == (64, 64, 30)
    zooms = np.sqrt((images[0].affine[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(sorted(zooms), [3.0, 3.0, 3.5], atol=1e-6)
    centre = images[0].affine @ np.array([31.5, 31.5, 14.5, 1])
    np.testing.assert_allclose(centre[:3], [0, 0, 0], atol=1e-6)  # the volume is centred
    (x0, x1), (y0, y1), (z0, z1) = activation_roi((64, 64, 30))
    means = [img.get_fdata()[x0:x1, y0:y1, z0:z1].mean() for img in images]
    off, on = np.mean(means[:10]), np.mean(means[10:20])
    assert on > off * 1.03  # a 4 % block effect, far above the noise
    assert abs(means[20] - off) < 0.01 * off


def test_not_a_dataset():
    with pytest.raises(ValidationError):
        convertDicomImgToNifti(b"bytes")  # type: ignore[arg-type]


def test_acquisition_and_repetition_time(sample_dicom_dir):
    ds = read_dicom_file(sample_dicom_dir / "001_000013_000000.dcm")
    assert getDicomRepetitionTime(ds) == 1.5
    assert getDicomAcquisitionTime(ds) == dt.time(12, 48, 3, 827500)


def test_time_to_next_tr():
    acquired = dt.time(10, 0, 0)
    assert getTimeToNextTR(acquired, 2.0, dt.time(10, 0, 0, 500000), 0) == pytest.approx(1.5)
    assert getTimeToNextTR(acquired, 2.0, dt.time(10, 0, 5), 0) == pytest.approx(1.0)
    assert getTimeToNextTR(acquired, 2.0, dt.time(10, 0, 4), 0) == pytest.approx(2.0)
    # the scanner clock is 0.25 s ahead of ours
    assert getTimeToNextTR(acquired, 2.0, dt.time(10, 0, 0, 500000), 0.25) == pytest.approx(1.25)
    # replaying data acquired later in the day than now must not fail
    assert 0 < getTimeToNextTR(dt.time(23, 0, 0), 1.5, dt.time(8, 0, 0), 0) <= 1.5
    with pytest.raises(StateError):
        getTimeToNextTR("10:00", 2.0, dt.time(10, 0, 0), 0)  # type: ignore[arg-type]


def test_dicom_time_to_next_tr(tmp_path):
    (path,) = generate_series(tmp_path, num_volumes=1, tr_ms=2000)
    ds = read_dicom_file(path)
    value = dicomTimeToNextTr(ds, 0.0)
    assert 0 < value <= 2.0
    del ds.AcquisitionTime
    with pytest.raises(StateError, match="AcquisitionTime"):
        dicomTimeToNextTr(ds, 0.0)
