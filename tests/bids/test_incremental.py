"""BidsIncremental: construction, metadata, names against pybids, by-value form, timing,
and a DICOM volume against dcm2niix (image and the sidecar fields BIDS requires)."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
from bidstools import assert_valid, image, incremental, metadata

from rtcloud.bids.common import BIDS_FILE_PATH_PATTERN, BidsFileExtension, metadataFromProtocolName
from rtcloud.bids.dicom import dicom_to_incremental
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.errors import MissingMetadataError, ProtocolError, StateError
from rtcloud.imaging.anonymize import anonymize_dicom
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.rpc.codec import decode, encode


def test_a_3d_image_becomes_4d_with_tr_on_the_time_axis():
    inc = BidsIncremental(image((8, 9, 5)), metadata(RepetitionTime=1500))
    assert inc.getImageDimensions() == (8, 9, 5, 1)
    assert inc.getRepetitionTime() == 1.5  # milliseconds made seconds
    assert inc.image.header.get_zooms()[3] == pytest.approx(1.5)
    assert inc.image.header.get_xyzt_units() == ("mm", "sec")
    assert inc.getImageData().dtype == np.int16
    assert type(inc.getMetadataField("EchoTime")) is float


@pytest.mark.parametrize(
    "bad, error",
    [
        (None, TypeError),
        ("not an image", TypeError),
        (nib.Nifti1Image(np.zeros((4, 4), np.int16), np.eye(4)), ValueError),
        (nib.Nifti1Image(np.zeros((4, 4, 1, 1), np.int16), np.eye(4)), ValueError),
    ],
)
def test_bad_images_are_refused(bad, error):
    with pytest.raises(error):
        BidsIncremental(bad, metadata())


@pytest.mark.parametrize("field", BidsIncremental.REQUIRED_IMAGE_METADATA)
def test_missing_required_metadata_names_the_field(field):
    md = metadata()
    md.pop("ProtocolName")
    md.pop(field)
    assert not BidsIncremental.isCompleteImageMetadata(md)
    with pytest.raises(MissingMetadataError, match=field):
        BidsIncremental(image(), md)


def test_metadata_rules():
    with pytest.raises(ValueError):
        BidsIncremental(image(), metadata(RepetitionTime=10**6))
    with pytest.raises(NotImplementedError):
        BidsIncremental(image(), metadata(datatype="anat"))
    with pytest.raises(MissingMetadataError):
        BidsIncremental(image(), metadata(), {"Name": "no version"})
    # given metadata wins over entities parsed from the protocol name
    assert metadataFromProtocolName("func_ses-2_task-faces_run-01") == {
        "datatype": "func",
        "session": "2",
        "task": "faces",
        "run": "01",
    }
    inc = BidsIncremental(image(), metadata(run=7))
    assert inc.getMetadataField("run") == 7
    md = metadata()
    inc = BidsIncremental(image(), md)
    md["subject"] = "changed"
    assert inc.getMetadataField("subject") == "01"  # a copy was kept


def test_get_set_remove_metadata():
    inc = incremental()
    with pytest.raises(KeyError, match="Nonexistent"):
        inc.getMetadataField("Nonexistent")
    with pytest.raises(ValueError):
        inc.getMetadataField("Nonexistent", strict=True)
    with pytest.raises(ValueError):
        inc.setMetadataField("nonentity", 1, strict=True)
    with pytest.raises(ValueError):
        inc.setMetadataField(None, 1)
    inc.setMetadataField("nonentity", "value")
    assert inc.getMetadataField("nonentity") == "value"
    inc.removeMetadataField("nonentity")
    with pytest.raises(RuntimeError):
        inc.removeMetadataField("subject")
    inc.setMetadataField("task", "other")
    assert inc.getMetadataField("TaskName") == "other"
    assert inc.getEntities() == {
        "subject": "01",
        "task": "other",
        "suffix": "bold",
        "datatype": "func",
        "run": 1,
    }


def test_names_and_paths_are_pybids_own():
    from bids.layout.writing import build_path

    for extra in ({}, {"session": "pre", "acquisition": "mb4", "direction": "AP", "echo": 2}):
        inc = incremental(**extra)
        entities = inc.getEntities()
        for ext in (".nii", ".json"):
            expected = build_path({**entities, "extension": ext}, BIDS_FILE_PATH_PATTERN)
            path = inc.getImageFilePath() if ext == ".nii" else inc.getMetadataFilePath()
            assert path == expected
        events = build_path(
            {**entities, "suffix": "events", "extension": ".tsv"}, BIDS_FILE_PATH_PATTERN
        )
        assert inc.getEventsFilePath() == events
        assert inc.makeBidsFileName(BidsFileExtension.IMAGE) == inc.getImageFileName()


def test_equality_looks_at_everything():
    import pandas as pd

    a, b = incremental(), incremental()
    assert a == b
    assert a != incremental(seed=1)
    assert a != incremental(subject="02")
    assert a != BidsIncremental(image(), metadata(), {"Name": "x", "BIDSVersion": "1.9.0"})
    b.readme = "other"
    assert a != b
    b = incremental()
    b.events = pd.DataFrame({"onset": [1.0], "duration": [2.0]})
    assert a != b
    count = len(a.getImageMetadata())
    assert str(a) == f"Image shape: (8, 9, 5, 1); Metadata Key Count: {count}; BIDS-I Version: 1"


def test_by_value_form_round_trips_through_the_codec_and_pickle(tmp_path):
    import pandas as pd

    path = tmp_path / "img.nii"
    nib.save(image((8, 9, 5, 3)), path)
    inc = BidsIncremental(nib.load(path), metadata())
    inc.events = pd.DataFrame(
        {"onset": [0.0, 4.0], "duration": [2.0, 2.0], "trial_type": ["a", "b"]}
    )
    inc.readme = "my study\n"
    for copy in (decode(encode(inc)), pickle.loads(pickle.dumps(inc))):
        assert copy == inc
        assert copy.image.file_map["image"].filename is None
    path.unlink()
    assert decode(encode([inc]))[0].getImageDimensions() == (8, 9, 5, 3)


def test_a_malformed_wire_form_is_a_protocol_error():
    form = incremental().to_wire()
    form["nifti"] = form["nifti"][:400]
    with pytest.raises(ProtocolError):
        BidsIncremental.from_wire(form)
    with pytest.raises(ProtocolError):
        BidsIncremental.from_wire({"nifti": 3})


def test_time_to_next_tr():
    inc = incremental(RepetitionTime=1.5, AcquisitionTime="12:47:56.000000")
    now = dt.time(12, 47, 57, 500000)
    assert math.isclose(inc.timeToNextTr(0.0, now=now), 1.5)
    assert math.isclose(inc.timeToNextTr(0.1, now=now), 1.4)
    inc.removeMetadataField("AcquisitionTime")
    with pytest.raises(StateError, match="AcquisitionTime"):
        inc.timeToNextTr(0.0, now=now)


def test_write_to_disk_is_a_valid_dataset_pybids_reads_back(tmp_path):
    from bids import BIDSLayout

    inc = incremental(shape=(8, 9, 5, 4))
    inc.writeToDisk(tmp_path / "ds")
    assert_valid(tmp_path / "ds")
    layout = BIDSLayout(tmp_path / "ds", validate=False)
    (found,) = layout.get(suffix="bold", extension=".nii")
    md = layout.get_metadata(found.path)
    assert md["RepetitionTime"] == 2.0 and md["TaskName"] == "faces"
    entities = {k: v for k, v in found.get_entities().items() if k != "extension"}
    assert BidsIncremental(found, {**md, **entities}) == inc
    inc.writeToDisk(tmp_path / "data-only", onlyData=True)
    assert not (tmp_path / "data-only" / "README").exists()


def test_a_dicom_volume_is_what_dcm2niix_and_its_json_give(sample_dicom_dir, tmp_path):
    dcm2niix = pytest.importorskip("dcm2niix")
    path = sorted(sample_dicom_dir.glob("*.dcm"))[3]
    ds = read_dicom_file(path)
    anonymize_dicom(ds)
    inc = dicom_to_incremental(ds, {"subject": "01", "task": "faces", "run": 1})
    out, source = tmp_path / "oracle", tmp_path / "one"
    out.mkdir()
    source.mkdir()
    shutil.copyfile(path, source / path.name)  # dcm2niix converts a file's whole folder
    subprocess.run(
        [dcm2niix.bin, "-z", "n", "-b", "y", "-ba", "y", "-f", "v", "-o", out, source],
        check=True,
        capture_output=True,
    )
    theirs = nib.load(out / "v.nii")
    sidecar = json.loads((out / "v.json").read_text())
    ours = inc.getImageData()
    assert ours.shape == (*theirs.shape[:3], 1)
    np.testing.assert_array_equal(ours[..., 0], np.asanyarray(theirs.dataobj))
    np.testing.assert_allclose(inc.image.affine, theirs.affine, atol=0.01)
    # what the BIDS specification requires of a bold sidecar, and what analysis reads
    for key in ("RepetitionTime", "EchoTime", "FlipAngle", "PhaseEncodingDirection"):
        assert inc.getMetadataField(key) == pytest.approx(sidecar[key], abs=1e-6), key
    np.testing.assert_allclose(
        inc.getMetadataField("SliceTiming"), sidecar["SliceTiming"], atol=1e-4
    )
    assert inc.getMetadataField("TaskName") == "faces"
    assert inc.image.header.get_zooms()[3] == pytest.approx(sidecar["RepetitionTime"])
    # nothing that names the participant
    assert not any("Patient" in key for key in inc.getImageMetadata())
    inc.writeToDisk(tmp_path / "ds")
    assert_valid(tmp_path / "ds")
