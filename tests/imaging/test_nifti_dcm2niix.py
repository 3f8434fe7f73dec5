"""DICOM to NIfTI against dcm2niix, the field's reference converter (and RT-Cloud's).

Every image we make is compared with the image dcm2niix makes of the same file(s): the same
voxel values and an affine within 0.01 mm after both are brought to the closest canonical
(RAS) orientation; for 2-D acquisitions (fMRI) also the same voxel order as they come, so
that voxel indices taken from a dcm2niix image mean the same voxels in ours. The sidecar
fields BIDS users read are compared with dcm2niix's JSON.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from dcm2niix_oracle import (
    FMRI_FIELDS,
    NIBABEL_DATA,
    assert_same_image,
    assert_same_sidecar,
    gunzipped,
    run_dcm2niix,
)
from rtcloud.imaging.dicom import anonymize_dicom, read_dicom_file
from rtcloud.imaging.nifti import convertDicomFileToNifti, convertDicomImgToNifti
from rtcloud.imaging.sidecar import bids_sidecar
from rtcloud.simulate.synthetic import activation_roi, generate_series


def test_real_siemens_series_matches_dcm2niix_volume_by_volume(sample_dicom_dir, tmp_path):
    files = sorted(sample_dicom_dir.glob("*.dcm"))
    assert len(files) >= 5
    theirs, their_sidecar = run_dcm2niix(files, tmp_path / "oracle")
    # dcm2niix stacks volumes by InstanceNumber and drops exact duplicates (the shared
    # series' volume 0 is a copy of volume 10)
    numbers = sorted({int(read_dicom_file(path).InstanceNumber) for path in files})
    assert theirs.shape == (64, 64, 27, len(numbers))
    for path in files:
        ds = read_dicom_file(path)
        ours = convertDicomImgToNifti(ds)
        t = numbers.index(int(ds.InstanceNumber))
        volume = nib.Nifti1Image(
            np.asanyarray(theirs.dataobj)[..., t], theirs.affine, theirs.header
        )
        assert_same_image(ours, volume, exact=True)
    assert_same_sidecar(bids_sidecar(ds, ours.shape), their_sidecar, FMRI_FIELDS)
    # a transversal EPI: i runs to the patient's left, j forward, k up (dcm2niix's "LAS")
    assert nib.aff2axcodes(ours.affine) == ("L", "A", "S")


def test_anonymized_volume_converts_to_the_same_image(sample_dicom_dir, tmp_path):
    path = sample_dicom_dir / "001_000013_000003.dcm"
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    ds = anonymize_dicom(read_dicom_file(path))
    ours = convertDicomImgToNifti(ds)
    assert_same_image(ours, theirs, exact=True)
    assert_same_sidecar(bids_sidecar(ds, ours.shape), their_sidecar, FMRI_FIELDS)


def test_file_conversion_writes_what_dcm2niix_writes(sample_dicom_dir, tmp_path):
    path = sample_dicom_dir / "001_000013_000000.dcm"
    out = tmp_path / "ours.nii.gz"
    convertDicomFileToNifti(path, out)
    theirs, _ = run_dcm2niix([path], tmp_path / "oracle")
    assert_same_image(nib.load(out), theirs, exact=True)


def test_synthetic_series_matches_dcm2niix_and_its_roi(tmp_path):
    paths = generate_series(tmp_path / "series", num_volumes=12, shape=(64, 64, 30), block=6)
    theirs, their_sidecar = run_dcm2niix(paths, tmp_path / "oracle")
    (x0, x1), (y0, y1), (z0, z1) = activation_roi((64, 64, 30))
    for t, path in enumerate(paths):
        ds = read_dicom_file(path)
        ours = convertDicomImgToNifti(ds)
        volume = nib.Nifti1Image(
            np.asanyarray(theirs.dataobj)[..., t], theirs.affine, theirs.header
        )
        assert_same_image(ours, volume, exact=True)
    assert_same_sidecar(bids_sidecar(ds, ours.shape), their_sidecar, FMRI_FIELDS)
    # the activated box, in voxel indices of dcm2niix's image, shows the blocks
    roi = theirs.get_fdata()[x0:x1, y0:y1, z0:z1].mean(axis=(0, 1, 2))
    assert roi[6:12].mean() > roi[0:6].mean() * 1.03
    # and the synthetic head is centred on the scanner's origin
    centre = ours.affine @ np.array([31.5, 31.5, 14.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-6)


@pytest.mark.parametrize("name", ["siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"])
def test_nibabel_siemens_dwi_mosaic(name, tmp_path):
    path = gunzipped(NIBABEL_DATA / name, tmp_path)
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    ds = read_dicom_file(path)
    ours = convertDicomImgToNifti(ds)
    assert_same_image(ours, theirs, exact=True)
    assert_same_sidecar(bids_sidecar(ds, ours.shape), their_sidecar, {"EchoTime"})


def test_nibabel_philips_enhanced_multiframe(tmp_path):
    path = gunzipped(NIBABEL_DATA / "philips_mprage.dcm.gz", tmp_path)
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    ds = read_dicom_file(path)
    ours = convertDicomImgToNifti(ds)
    # dcm2niix turns 3-D acquisitions to the nearest canonical order: compare there
    assert_same_image(ours, theirs, exact=False)
    assert_same_sidecar(bids_sidecar(ds, ours.shape), their_sidecar, {"RepetitionTime"})


def test_voxel_to_world_is_ras_not_lps(sample_dicom_dir):
    """The world point of a voxel is the DICOM patient position with x and y negated."""
    ds = read_dicom_file(sample_dicom_dir / "001_000013_000000.dcm")
    image = convertDicomImgToNifti(ds)
    # the first stored pixel of the first slice: DICOM row 0, column 0, which dcm2niix puts
    # at i = 0 and j = rows - 1 (j runs up the rows)
    position = ds.ImagePositionPatient  # of the whole mosaic, not of the first tile
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    spacing = np.array(ds.PixelSpacing, dtype=float)
    tile, mosaic = 64, int(ds.Columns)
    shift = (mosaic - tile) / 2  # Siemens: position of the mosaic's corner, tile centred
    first_tile_lps = (
        np.array(position, dtype=float)
        + iop[:3] * spacing[1] * shift
        + iop[3:] * spacing[0] * shift
    )
    world = image.affine @ np.array([0.0, tile - 1.0, 0.0, 1.0])
    np.testing.assert_allclose(world[:3], first_tile_lps * np.array([-1, -1, 1]), atol=0.01)
