"""BidsRun: appending without copies, refusing what does not fit (naming the field, leaving
the run as it was), reading volumes back."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bidstools import image, incremental, metadata

from rtcloud.bids.incremental import BidsIncremental
from rtcloud.bids.run import BidsRun
from rtcloud.errors import MetadataMismatchError


def test_append_and_read_back_each_volume():
    run = BidsRun(subject="01", task="faces", run="1")
    assert run.getRunEntities()["run"] == 1
    incs = [incremental(seed=i, AcquisitionTime=f"12:00:0{i}.000000") for i in range(5)]
    for inc in incs:
        run.appendIncremental(inc)
    assert run.numIncrementals() == 5
    for i, inc in enumerate(incs):
        assert run.getIncremental(i) == inc  # AcquisitionTime kept per volume
    assert run.getIncremental(-1) == incs[-1]
    with pytest.raises(IndexError):
        run.getIncremental(5)
    single = run.asSingleIncremental()
    assert single.getImageDimensions() == (8, 9, 5, 5)
    np.testing.assert_array_equal(single.getImageData()[..., 2], incs[2].getImageData()[..., 0])
    assert BidsRun().asSingleIncremental() is None


def test_volumes_are_held_not_copied():
    run = BidsRun()
    inc = incremental()
    run.appendIncremental(inc)
    (volume,) = run.iter_volumes()
    assert np.shares_memory(volume, inc.getImageData())


def test_a_multi_volume_incremental_is_split_into_volumes():
    run = BidsRun()
    four_d = BidsIncremental(image((8, 9, 5, 3)), metadata())
    run.appendIncremental(four_d)
    run.appendIncremental(incremental())
    assert run.numIncrementals() == 4
    np.testing.assert_array_equal(
        run.getIncremental(1).getImageData()[..., 0], four_d.getImageData()[..., 1]
    )


def _shifted_affine():
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    affine[:3, 3] = [-10.0, -12.0, -7.0]
    return affine


@pytest.mark.parametrize(
    "other, field",
    [
        (lambda: BidsIncremental(image((8, 9, 6)), metadata()), "shape"),
        (lambda: BidsIncremental(image(affine=_shifted_affine()), metadata()), "affine"),
        (lambda: BidsIncremental(image(dtype=np.float32), metadata()), "data type"),
        (lambda: incremental(RepetitionTime=1.5), "RepetitionTime"),
        (lambda: incremental(EchoTime=0.05), "EchoTime"),
        (lambda: incremental(subject="02"), "subject"),
        (lambda: incremental(run=2), "run"),
    ],
)
def test_what_does_not_fit_is_refused_by_name_and_the_run_is_unchanged(other, field):
    run = BidsRun(subject="01", run=1)
    first = incremental()
    run.appendIncremental(first)
    with pytest.raises(MetadataMismatchError, match=field):
        run.appendIncremental(other())
    assert run.numIncrementals() == 1
    assert run.getIncremental(0) == first


def test_readme_description_and_events_must_agree():
    run = BidsRun()
    first = incremental()
    first.events = pd.DataFrame({"onset": [0.0], "duration": [1.0]})
    run.appendIncremental(first)
    other = incremental()
    other.readme = "another study"
    with pytest.raises(MetadataMismatchError, match="README"):
        run.appendIncremental(other)
    other = BidsIncremental(image(), metadata(), {"Name": "other", "BIDSVersion": "1.9.0"})
    with pytest.raises(MetadataMismatchError, match="description"):
        run.appendIncremental(other)
    other = incremental()
    other.events = pd.DataFrame({"onset": [5.0], "duration": [1.0]})
    with pytest.raises(MetadataMismatchError, match="events"):
        run.appendIncremental(other)
    longer = incremental()
    longer.events = pd.DataFrame({"onset": [0.0, 2.0], "duration": [1.0, 1.0]})
    run.appendIncremental(longer)  # continues the run's table
    assert len(run.events) == 2
    run.appendIncremental(incremental())  # no table: keeps the run's
    assert len(run.events) == 2 and run.numIncrementals() == 3


def test_without_validation_anything_of_the_same_shape_goes():
    run = BidsRun()
    run.appendIncremental(incremental())
    run.appendIncremental(incremental(EchoTime=0.05), validateAppend=False)
    assert run.numIncrementals() == 2


def test_equality():
    a, b = BidsRun(), BidsRun()
    for run in (a, b):
        run.appendIncremental(incremental())
    assert a == b
    b.appendIncremental(incremental(seed=3))
    assert a != b


def test_a_float_image_round_trips():
    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 9, 5)).astype(np.float32), np.eye(4))
    run = BidsRun()
    run.appendIncremental(BidsIncremental(img, metadata()))
    assert run.getIncremental(0).getImageData().dtype == np.float32


def test_volumes_made_the_rt_cloud_way_from_real_dicoms_append_to_one_run(
    sample_dicom_dir, tmp_path
):
    """RT-Cloud's DICOM path (getDicomMetadata + convertDicomImgToNifti + BidsIncremental)
    gives each volume its header's per-image values (InstanceNumber, SOPInstanceUID,
    WindowCenter, ...): the second volume was refused as "metadata differs". Volumes of one
    run must agree on how they were acquired, not on every header value."""
    from bidstools import assert_valid

    from rtcloud.bids.archive import BidsArchive
    from rtcloud.bids.common import getDicomMetadata, metadataAppendCompatible
    from rtcloud.imaging.dicom import read_dicom_file
    from rtcloud.imaging.nifti import convertDicomImgToNifti

    entities = {"subject": "01", "task": "faces", "suffix": "bold", "datatype": "func", "run": 1}
    incs = []
    for path in sorted(sample_dicom_dir.glob("*.dcm"))[1:4]:
        ds = read_dicom_file(path)
        incs.append(
            BidsIncremental(convertDicomImgToNifti(ds), {**getDicomMetadata(ds), **entities})
        )
    run = BidsRun()
    for inc in incs:
        run.appendIncremental(inc)
    assert run.numIncrementals() == 3
    for i, inc in enumerate(incs):  # each volume reads back with its own header values
        assert run.getIncremental(i) == inc
    shared = run.run_metadata()
    assert "SOPInstanceUID" not in shared and "InstanceNumber" not in shared
    assert shared["RepetitionTime"] == 1.5 and shared["subject"] == "01"
    # a field only one side has is no difference; an acquisition field is
    assert metadataAppendCompatible({"A": 1}, {}) == (True, "")
    ok, why = metadataAppendCompatible({"FlipAngle": 70}, {"FlipAngle": 90})
    assert not ok and "FlipAngle" in why
    assert_valid(BidsArchive(str(tmp_path / "ds")).appendBidsRun(run).split("/sub-")[0])


def test_each_volume_of_a_multi_volume_image_has_its_own_acquisition_time():
    """Volumes split from one 4-D image all said they were acquired when the first was:
    volume t is acquired t TRs later (the time to the next TR, and replays, read it)."""
    run = BidsRun()
    md = metadata(AcquisitionTime="12:00:02.000000", AcquisitionNumber=5)
    run.appendIncremental(BidsIncremental(image((8, 9, 5, 3)), md))
    tr = md["RepetitionTime"]
    times = [run.getIncremental(t).getAcquisitionTime() for t in range(3)]
    seconds = [dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6 for dt in times]
    np.testing.assert_allclose(np.diff(seconds), [tr, tr])
    assert seconds[0] == 12 * 3600 + 2
    assert [run.getIncremental(t).getMetadataField("AcquisitionNumber") for t in range(3)] == [
        5,
        6,
        7,
    ]
