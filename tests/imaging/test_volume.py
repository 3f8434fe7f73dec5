"""Volumes of every layout against dcm2niix, and how a stream's objects become volumes.

Each layout the simulator writes (a Siemens mosaic, an enhanced multi-frame object, one
classic object per slice) is converted one volume at a time and compared with the image
dcm2niix makes of the same file(s): the same voxels in the same order and the same affine
(0.01 mm), and the sidecar fields dcm2niix writes. Real files shipped inside nibabel are
further input.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from dcm2niix_oracle import (
    NIBABEL_DATA,
    assert_same_image,
    assert_same_sidecar,
    run_dcm2niix,
)
from rtcloud.errors import ValidationError
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.volume import DicomObject, VolumeReader, layout_of, volume_image
from rtcloud.simulate.synthetic import generate_series

SHAPE = (16, 12, 6)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Two volumes of each layout: layout -> list of the files of each volume."""
    out = {}
    start = dt.datetime(2026, 1, 2, 10, 0, 0)
    for layout in ("mosaic", "enhanced", "slices"):
        paths = generate_series(
            tmp_path_factory.mktemp(layout),
            num_volumes=2,
            shape=SHAPE,
            layout=layout,
            start=start,
        )
        per = SHAPE[2] if layout == "slices" else 1
        out[layout] = [paths[i : i + per] for i in range(0, len(paths), per)]
    return out


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices"])
def test_each_layout_matches_dcm2niix_voxel_for_voxel(series, layout, tmp_path):
    for number, files in enumerate(series[layout]):
        datasets = [read_dicom_file(path) for path in files]
        assert {layout_of(ds) for ds in datasets} == {layout}
        ours = volume_image(datasets)
        theirs, their_sidecar = run_dcm2niix(files, tmp_path / f"v{number}")
        assert_same_image(ours, theirs, exact=True)
        required = {"RepetitionTime", "EchoTime"}
        if layout != "enhanced":  # dcm2niix gives no slice times for one enhanced volume
            required.add("SliceTiming")
        if layout == "slices":
            # dcm2niix keeps each slice's time of day in single precision: at 10:00 its
            # steps are 2**-8 s apart
            np.testing.assert_allclose(
                ours.sidecar["SliceTiming"], their_sidecar["SliceTiming"], atol=2**-8
            )
            required.discard("SliceTiming")
            their_sidecar.pop("SliceTiming")
        assert_same_sidecar(ours.sidecar, their_sidecar, required)
        axis = their_sidecar.get("PhaseEncodingDirection") or their_sidecar["PhaseEncodingAxis"]
        ours_axis = ours.sidecar.get("PhaseEncodingDirection") or ours.sidecar["PhaseEncodingAxis"]
        assert ours_axis == axis


def test_enhanced_slice_timing_comes_from_each_frames_acquisition_time(series):
    (path,) = series["enhanced"][1]
    ds = read_dicom_file(path)
    times = []
    for frame in ds.PerFrameFunctionalGroupsSequence:
        stamp = str(frame.FrameContentSequence[0].FrameAcquisitionDateTime)
        times.append(dt.datetime.strptime(stamp, "%Y%m%d%H%M%S.%f"))
    expected = [round((t - min(times)).total_seconds(), 6) for t in times]
    assert volume_image([ds]).sidecar["SliceTiming"] == expected
    assert expected == [round(k * 2.0 / SHAPE[2], 6) for k in range(SHAPE[2])]


def test_philips_enhanced_file_from_nibabel(tmp_path):
    path = tmp_path / "philips.dcm"
    path.write_bytes(gzip.decompress((NIBABEL_DATA / "philips_mprage.dcm.gz").read_bytes()))
    ours = volume_image([read_dicom_file(path)])
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    assert_same_image(ours, theirs, exact=False)  # dcm2niix reorders 3-D acquisitions
    assert_same_sidecar(ours.sidecar, their_sidecar, {"RepetitionTime"})


def _reader_with(paths: list[Path], slices_per_volume: int | None = None) -> VolumeReader:
    reader = VolumeReader(slices_per_volume)
    for path in paths:
        data = path.read_bytes()
        reader.add(DicomObject(str(path), None, data, read_dicom_file(path)))
    return reader


def test_slices_are_grouped_by_temporal_position_and_ordered_along_the_normal(series):
    volumes = series["slices"]
    files = [path for volume in volumes for path in volume]
    reader = _reader_with(list(reversed(files)))  # arrival order does not matter
    for index, volume in enumerate(volumes):
        slices = reader.slices(index)
        assert slices.complete and slices.expected == SHAPE[2]
        assert slices.names == [str(path) for path in volume]
    assert not reader.slices(2).complete and reader.slices(2).names == []


def test_a_volume_missing_a_slice_is_not_complete_and_says_what_arrived(series):
    volume = series["slices"][0]
    reader = _reader_with(volume[:2] + volume[3:])
    slices = reader.slices(0)
    assert not slices.complete
    assert slices.describe().startswith(f"{SHAPE[2] - 1} of {SHAPE[2]} slices arrived")
    assert volume[0].name in slices.describe() and volume[2].name not in slices.describe()


def test_slices_without_a_varying_temporal_attribute_group_by_instance_number(series, tmp_path):
    """GE writes no temporal position: volumes follow InstanceNumber, LocationsInAcquisition
    slices at a time."""
    files = [path for volume in series["slices"] for path in volume]
    reader = VolumeReader()
    for path in files:
        ds = read_dicom_file(path)
        del ds.TemporalPositionIdentifier
        ds.AcquisitionNumber = 1
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        del ds.ImagesInAcquisition
        ds.add_new((0x0021, 0x104F), "SS", SHAPE[2])
        reader.add(DicomObject(str(path), None, b"", ds))
    assert reader.slices(1).complete
    assert reader.slices(1).names == [str(path) for path in series["slices"][1]]


def test_a_replaced_or_deleted_slice_leaves_its_volume(series):
    first, second = series["slices"]
    reader = _reader_with(first + second)
    assert reader.slices(0).complete and reader.slices(1).complete
    reader.forget(str(first[2]))
    assert not reader.slices(0).complete and str(first[2]) not in reader.slices(0).names
    assert reader.slices(1).complete
    # a file of volume 1 written again under a name of volume 0
    reader.add(DicomObject(str(first[2]), None, b"", read_dicom_file(second[2])))
    assert not reader.slices(0).complete
    assert str(first[2]) in reader.slices(1).names
    reader.add(DicomObject(str(first[2]), None, b"", read_dicom_file(first[2])))
    assert reader.slices(0).complete and reader.slices(0).names == [str(p) for p in first]


@pytest.mark.parametrize("order", ["in order", "last volume first"])
def test_instance_number_groups_do_not_depend_on_arrival_order(series, order):
    volumes = series["slices"]
    arrival = volumes[1] + volumes[0] if order == "last volume first" else volumes[0] + volumes[1]
    reader = VolumeReader()
    for path in arrival:
        ds = read_dicom_file(path)
        del ds.TemporalPositionIdentifier
        ds.AcquisitionNumber = 1
        reader.add(DicomObject(str(path), None, b"", ds))
    for index, volume in enumerate(volumes):
        assert reader.slices(index).complete
        assert reader.slices(index).names == [str(path) for path in volume]
    assert reader.slices(2).names == []


def test_slice_count_is_learned_from_the_first_volume_when_no_header_says_it(series):
    files = [path for volume in series["slices"] for path in volume]
    reader = VolumeReader()
    for path in files[: SHAPE[2]]:
        ds = read_dicom_file(path)
        del ds.ImagesInAcquisition
        reader.add(DicomObject(str(path), None, b"", ds))
    assert not reader.slices(0).complete  # nothing says the volume is whole yet
    ds = read_dicom_file(files[SHAPE[2]])
    del ds.ImagesInAcquisition
    reader.add(DicomObject(str(files[SHAPE[2]]), None, b"", ds))
    assert reader.slices(0).complete  # a slice of volume 1: volume 0 had all its positions
    assert _reader_with(files[:3], slices_per_volume=3).slices(0).complete


def test_a_slice_without_geometry_is_a_clear_error(series):
    ds = read_dicom_file(series["slices"][0][0])
    del ds.ImagePositionPatient
    with pytest.raises(ValidationError, match="ImagePositionPatient"):
        volume_image([ds, read_dicom_file(series["slices"][0][1])])


@pytest.mark.parametrize(
    "name",
    ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_padded.dcm"],
)
def test_pydicom_single_slice_mr_files(name, tmp_path):
    """pydicom's own MR slice, in several transfer syntaxes: a one-slice volume as dcm2niix
    makes it (pixels read by pydicom where our plain reader does not apply)."""
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file(name, read=False))
    ours = volume_image([read_dicom_file(path)])
    theirs, their_sidecar = run_dcm2niix([path], tmp_path / "oracle")
    assert ours.shape[:2] == theirs.shape[:2]
    assert_same_image(ours, theirs, exact=True)
    assert_same_sidecar(ours.sidecar, their_sidecar, {"RepetitionTime", "EchoTime"})
