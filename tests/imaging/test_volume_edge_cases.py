"""Files real scanners can write that the simulator does not, each against dcm2niix (or
pydicom): a mosaic whose CSA header has no slice normal, stray bits above BitsStored,
per-slice images carrying a Siemens CSA slice-time list, and a multi-echo per-slice volume."""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dcm2niix_oracle import (
    SERIES_START,
    assert_same_image,
    assert_volume_matches_dcm2niix,
    run_dcm2niix,
)
from rtcloud.errors import InvalidDicomError
from rtcloud.imaging.nifti import dicom_to_nifti
from rtcloud.imaging.volume import volume_image
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.synthetic import encode_csa2, generate_series

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
    from nibabel.nicom import csareader

SAMPLE = "001_000013_000000.dcm"
PATTERN = "001_000013_{TR:06d}.dcm"


def _set_csa_image_tags(ds: pydicom.Dataset, tags: dict[str, tuple[str, list[str]]]) -> None:
    """Replace the image CSA header of ``ds`` (creating the private block when needed)."""
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    block.add_new(0x08, "CS", "IMAGE NUM 4")
    block.add_new(0x10, "OB", encode_csa2(tags))


def _sample_with_csa(sample_dicom_dir, path, change) -> None:
    """Write the real sample mosaic to ``path`` with its CSA image tags passed through
    ``change`` (a function that edits the ``{name: (vr, items)}`` dict in place)."""
    ds = pydicom.dcmread(sample_dicom_dir / SAMPLE)
    header = csareader.get_csa_header(ds, "image")
    tags = {k: (v["vr"], [str(x) for x in v["items"]]) for k, v in header["tags"].items()}
    change(tags)
    _set_csa_image_tags(ds, tags)
    ds.save_as(path)


def test_a_mosaic_without_a_slice_normal_stacks_as_dcm2niix_does(sample_dicom_dir, tmp_path):
    """Without SliceNormalVector the tiles go along row x column; the opposite default put
    slice k 4k mm below slice 0 instead of above it."""
    path = tmp_path / "mosaic.dcm"
    _sample_with_csa(sample_dicom_dir, path, lambda tags: tags.pop("SliceNormalVector"))
    ours = dicom_to_nifti(pydicom.dcmread(path))
    theirs, _ = run_dcm2niix([path], tmp_path / "oracle")
    assert_same_image(ours, theirs, exact=True)


def test_bits_above_bits_stored_are_not_part_of_the_value(sample_dicom_dir, tmp_path):
    ds = pydicom.dcmread(sample_dicom_dir / SAMPLE)
    assert (ds.BitsStored, ds.BitsAllocated, ds.PixelRepresentation) == (12, 16, 0)
    pixels = ds.pixel_array.copy()
    pixels[::7, ::5] |= 0xF000  # an old overlay's bits
    ds.PixelData = pixels.tobytes()
    path = tmp_path / "overlay.dcm"
    ds.save_as(path)
    ours = dicom_to_nifti(pydicom.dcmread(path))
    theirs, _ = run_dcm2niix([path], tmp_path / "oracle")
    assert_same_image(ours, theirs, exact=True)
    assert np.asarray(ours.dataobj).max() == pydicom.dcmread(path).pixel_array.max() < 4096


def _slices_with_csa_times(tmp_path):
    """One volume of six slices written top down, each slice's header also carrying a CSA
    slice-time list in the order the files were written (as a mosaic's would)."""
    source = generate_series(
        tmp_path / "source",
        num_volumes=1,
        shape=(16, 12, 6),
        layout="slices",
        start=SERIES_START,
    )
    times_ms = [0.0, 1000.0, 333.0, 1333.0, 666.0, 1666.0]  # by position, bottom up
    start = dt.datetime.combine(dt.date(2026, 1, 2), SERIES_START.time())
    paths = []
    for k, path in enumerate(source):
        ds = pydicom.dcmread(path)
        below = len(source) - 1 - k  # file k is the k-th from the top
        position = [float(v) for v in ds.ImagePositionPatient]
        position[2] = -8.75 + 3.5 * below
        ds.ImagePositionPatient = [f"{v:.5f}" for v in position]
        ds.SliceLocation = f"{position[2]:.5f}"
        ds.AcquisitionTime = (start + dt.timedelta(milliseconds=times_ms[below])).strftime(
            "%H%M%S.%f"
        )
        in_file_order = [times_ms[len(source) - 1 - j] for j in range(len(source))]
        _set_csa_image_tags(ds, {"MosaicRefAcqTimes": ("FD", [f"{t:.4f}" for t in in_file_order])})
        out = tmp_path / "slices" / path.name
        out.parent.mkdir(exist_ok=True)
        ds.save_as(out)
        paths.append(out)
    return paths


def test_per_slice_times_come_from_each_slice_not_from_a_csa_list(tmp_path):
    paths = _slices_with_csa_times(tmp_path)
    image = volume_image([pydicom.dcmread(path) for path in paths])
    assert_volume_matches_dcm2niix(image, paths, tmp_path / "oracle")
    np.testing.assert_allclose(
        image.sidecar["SliceTiming"], [0.0, 1.0, 0.333, 1.333, 0.666, 1.666], atol=2**-8
    )


@pytest.mark.parametrize("numbering", ["temporal", "instance", "images-count-echoes"])
def test_a_multi_echo_per_slice_volume_is_an_error_not_one_merged_image(tmp_path, numbering):
    """Two echoes of each slice share its position: stacking them made one volume of twice
    the slices, echoes alternating, 1.6 mm apart instead of 3.5. Numbered by instance only
    (GE: no temporal attribute varies), volume 1 was echo 2 of volume 0, with no error; with
    ImagesInAcquisition counting every image (slices x echoes, the DICOM meaning) the
    volume never completed and getVolume timed out."""
    source = generate_series(
        tmp_path / "source",
        num_volumes=2,
        shape=(16, 12, 6),
        layout="slices",
        start=SERIES_START,
    )
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    number = 0
    for volume in range(2):
        for echo, echo_time in ((1, "14"), (2, "38")):
            for path in source[volume * 6 : (volume + 1) * 6]:
                ds = pydicom.dcmread(path)
                ds.EchoNumbers, ds.EchoTime = echo, echo_time
                ds.InstanceNumber = number + 1
                if numbering == "instance":
                    del ds.TemporalPositionIdentifier, ds.AcquisitionNumber
                elif numbering == "images-count-echoes":
                    ds.ImagesInAcquisition = 12
                ds.save_as(scanner / PATTERN.format(TR=number))
                number += 1
    first = [pydicom.dcmread(scanner / PATTERN.format(TR=i)) for i in range(12)]
    with pytest.raises(InvalidDicomError, match="multi-echo"):
        volume_image(first)
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(scanner), PATTERN, 0)
        with pytest.raises(InvalidDicomError, match="getImageData"):
            di.getVolume(stream, 0, timeout=5)
    finally:
        di.close()
    shutil.rmtree(scanner)


def test_a_mosaic_numbered_in_reverse_is_turned_as_dcm2niix_turns_it(sample_dicom_dir, tmp_path):
    """A scanner set to number images in reverse writes ProtocolSliceNumber above 1 in the
    CSA header; dcm2niix then turns the slice axis (voxels, affine, slice times). We kept
    the tile order: the same places in the scanner, but voxel k was dcm2niix's 26-k, so a
    mask made on dcm2niix's image picked other voxels."""
    from dcm2niix_oracle import FMRI_FIELDS, assert_same_sidecar
    from rtcloud.imaging.sidecar import bids_sidecar

    path = tmp_path / "reversed.dcm"
    _sample_with_csa(
        sample_dicom_dir, path, lambda tags: tags.update(ProtocolSliceNumber=("IS", ["26"]))
    )
    ours = dicom_to_nifti(pydicom.dcmread(path))
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    assert_same_image(ours, theirs, exact=True)
    assert_same_sidecar(
        bids_sidecar(pydicom.dcmread(path), ours.shape), their_sidecar, FMRI_FIELDS
    )
    # the volume reader gives the same image
    np.testing.assert_array_equal(
        np.asanyarray(volume_image([pydicom.dcmread(path)]).dataobj), np.asanyarray(theirs.dataobj)
    )


def test_a_single_slice_image_lies_as_dcm2niix_puts_it(tmp_path):
    """One plane (pydicom's MR_small.dcm; a one-frame enhanced file): nibabel's wrapper made
    the third axis point against dcm2niix's (same voxels, mirrored handedness)."""
    from pydicom.data import get_testdata_file

    mr_small = Path(get_testdata_file("MR_small.dcm"))
    theirs, _ = run_dcm2niix([mr_small], tmp_path / "mr-small")
    assert_same_image(dicom_to_nifti(pydicom.dcmread(mr_small)), theirs, exact=True)
    (one_frame, *_) = generate_series(
        tmp_path / "frames", num_volumes=1, shape=(16, 12, 3), layout="enhanced-slices"
    )
    theirs, _ = run_dcm2niix([one_frame], tmp_path / "one-frame")
    assert_same_image(dicom_to_nifti(pydicom.dcmread(one_frame)), theirs, exact=True)
    assert_same_image(volume_image([pydicom.dcmread(one_frame)]), theirs, exact=True)


def _edited_series(tmp_path, layout, edit):
    """A one-volume synthetic series of ``layout`` (16x12x6) in a scanner folder, each file
    passed through ``edit(dataset)`` first; the folder's files in order."""
    source = generate_series(
        tmp_path / "source", num_volumes=1, shape=(16, 12, 6), layout=layout, start=SERIES_START
    )
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    for index, path in enumerate(source):
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(scanner / PATTERN.format(TR=index))
    return sorted(scanner.iterdir())


def _stream_volume(folder, tmp_path, index=0):
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        return di.getVolume(di.initScannerStream(str(folder), PATTERN, 0), index, timeout=5)
    finally:
        di.close()


def test_per_slice_volumes_have_the_echo_spacing_dcm2niix_gives(tmp_path):
    """Per-slice files with a CSA header: getVolume's sidecar lacked EffectiveEchoSpacing
    and TotalReadoutTime (the polarity and bandwidth were read, the matrix size was not)."""
    files = _edited_series(
        tmp_path,
        "slices",
        lambda ds: _set_csa_image_tags(
            ds,
            {
                "PhaseEncodingDirectionPositive": ("IS", ["1"]),
                "BandwidthPerPixelPhaseEncode": ("FD", ["25.0"]),
            },
        ),
    )
    image = _stream_volume(files[0].parent, tmp_path)
    assert_volume_matches_dcm2niix(image, files, tmp_path / "oracle")
    assert {"EffectiveEchoSpacing", "TotalReadoutTime", "PhaseEncodingDirection"} <= set(
        image.sidecar
    )


def _xa_private(item: pydicom.Dataset) -> None:
    """Siemens XA's PhaseEncodingDirectionPositive and BandwidthPerPixelPhaseEncode."""
    item.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    item.add_new(0x0021111C, "IS", "0")
    item.add_new(0x00211153, "FD", 25.0)


@pytest.mark.parametrize("layout", ["enhanced", "slices"])
def test_siemens_xa_phase_polarity_and_readout_time_as_dcm2niix_reads_them(tmp_path, layout):
    """XA files have no CSA header: the polarity and the bandwidth per pixel live in private
    elements (inside the functional groups of an enhanced file). We gave only the axis."""

    def edit(ds):
        if layout == "enhanced":
            shared = ds.SharedFunctionalGroupsSequence[0]
            inner = pydicom.Dataset()
            _xa_private(inner)
            shared.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
            shared.add_new(0x002110FE, "SQ", pydicom.Sequence([inner]))
        else:
            _xa_private(ds)

    files = _edited_series(tmp_path, layout, edit)
    image = _stream_volume(files[0].parent, tmp_path)
    assert_volume_matches_dcm2niix(image, files, tmp_path / "oracle")
    assert image.sidecar["PhaseEncodingDirection"] == "j"  # positive 0: dcm2niix's "j"
    assert image.sidecar["TotalReadoutTime"] > 0


def _philips_scaled(ds: pydicom.Dataset, layout: str) -> None:
    """A Philips image with RescaleSlope/Intercept and the private MRScaleSlope."""
    ds.Manufacturer = "Philips Medical Systems"
    ds.ManufacturerModelName, ds.SoftwareVersions = "Achieva dStream", "5.6.1"
    if layout == "slices":
        ds.RescaleSlope, ds.RescaleIntercept = "1.5", "-10"
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        block.add_new(0x0D, "FL", 0.0)  # MRScaleIntercept
        block.add_new(0x0E, "FL", 0.0125)  # MRScaleSlope
        return
    shared = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    shared.RescaleSlope, shared.RescaleIntercept = "1.5", "-10"
    for frame in ds.PerFrameFunctionalGroupsSequence:
        item = pydicom.Dataset()
        item.add_new(0x20050010, "LO", "Philips MR Imaging DD 001")
        item.add_new(0x2005100E, "FL", 0.0125)
        frame.add_new(0x20050010, "LO", "Philips MR Imaging DD 005")
        frame.add_new(0x2005140F, "SQ", pydicom.Sequence([item]))


@pytest.mark.parametrize("layout", ["slices", "enhanced"])
def test_philips_values_are_dcm2niix_floating_point_values(tmp_path, layout):
    """dcm2niix writes Philips images with a private MRScaleSlope as floating-point values
    (its default, -p y): (stored x slope + intercept) / (slope x MRScaleSlope). We wrote the
    display value stored x slope + intercept, off by a constant factor, so a threshold or a
    mean taken from a dcm2niix image did not hold on ours."""
    files = _edited_series(tmp_path, layout, lambda ds: _philips_scaled(ds, layout))
    image = _stream_volume(files[0].parent, tmp_path)
    assert_volume_matches_dcm2niix(image, files, tmp_path / "oracle")
    assert image.get_data_dtype() == np.float32
