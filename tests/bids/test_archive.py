"""BidsArchive: writing runs that the official validator accepts and pybids reads back, and
reading datasets we did not write (pybids' own example layouts)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bidstools import assert_valid, image, incremental

from rtcloud.bids.archive import BidsArchive
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.bids.run import BidsRun
from rtcloud.errors import NoMatchError, QueryError, StateError


def _run(n=6, **extra):
    run = BidsRun()
    for i in range(n):
        run.appendIncremental(incremental(seed=i, **extra))
    return run


def test_append_bids_run_writes_a_valid_dataset_pybids_reads_back(tmp_path):
    from bids import BIDSLayout

    root = tmp_path / "ds"
    archive = BidsArchive(root)
    assert archive.isEmpty() and archive.getSubjects() is None
    run = _run()
    first = run.getIncremental(0)
    events = pd.DataFrame({"onset": [0.0, 6.0], "duration": [3.0, 3.0], "trial_type": ["a", "b"]})
    first.events = events
    run2 = BidsRun()
    run2.appendIncremental(first)
    for i in range(1, 6):
        run2.appendIncremental(run.getIncremental(i))
    path = archive.appendBidsRun(run2)
    assert path.endswith("sub-01/func/sub-01_task-faces_run-1_bold.nii")
    assert_valid(root)
    # a second run (another run number) into the same dataset
    archive.appendBidsRun(_run(3, run=2))
    assert_valid(root)
    layout = BIDSLayout(root, validate=False)
    assert sorted(layout.get_runs()) == [1, 2]
    (bold,) = layout.get(run=1, suffix="bold", extension=".nii")
    img = nib.load(bold.path)
    assert img.shape == (8, 9, 5, 6)
    assert img.header.get_zooms()[3] == pytest.approx(2.0)
    for i in range(6):
        np.testing.assert_array_equal(
            np.asanyarray(img.dataobj)[..., i], run2.getIncremental(i).getImageData()[..., 0]
        )
    md = layout.get_metadata(bold.path)
    assert md["RepetitionTime"] == 2.0 and md["TaskName"] == "faces"
    assert "AcquisitionTime" not in md  # a per-volume field, not a run's
    (tsv,) = layout.get(run=1, suffix="events", extension=".tsv")
    pd.testing.assert_frame_equal(
        pd.read_csv(tsv.path, sep="\t")[["onset", "duration"]], events[["onset", "duration"]]
    )
    # and our reader gives back the same run
    again = BidsArchive(root).getBidsRun(subject="01", task="faces", run=1)
    assert again.numIncrementals() == 6
    for i in range(6):
        a, b = again.getIncremental(i), run2.getIncremental(i)
        np.testing.assert_array_equal(a.getImageData(), b.getImageData())
        assert a.getMetadataField("RepetitionTime") == 2.0
    assert list(again.events["trial_type"]) == ["a", "b"]
    assert BidsArchive(root).getReadmeText() == run2.readme


def test_an_existing_run_is_never_overwritten(tmp_path):
    archive = BidsArchive(tmp_path / "ds")
    archive.appendBidsRun(_run(2))
    before = (tmp_path / "ds/sub-01/func/sub-01_task-faces_run-1_bold.nii").read_bytes()
    with pytest.raises(StateError, match="already exists"):
        archive.appendBidsRun(_run(3))
    after = (tmp_path / "ds/sub-01/func/sub-01_task-faces_run-1_bold.nii").read_bytes()
    assert before == after
    assert not [p for p in (tmp_path / "ds/sub-01/func").iterdir() if p.name.startswith(".")]


def test_queries_that_do_not_match_exactly_one_run_say_so(tmp_path):
    archive = BidsArchive(tmp_path / "ds")
    archive.appendBidsRun(_run(2))
    archive.appendBidsRun(_run(2, run=2))
    with pytest.raises(NoMatchError, match=r"subjects \['01'\]"):
        archive.getBidsRun(subject="02", task="faces")
    with pytest.raises(LookupError):
        archive.getBidsRun(subject="02", task="faces")
    with pytest.raises(QueryError, match="2 images match"):
        archive.getBidsRun(subject="01", task="faces")


def test_a_folder_that_is_not_a_bids_dataset_says_what_to_do(tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "x.nii").write_bytes(b"")
    archive = BidsArchive(tmp_path / "scans")
    assert archive.isEmpty()
    with pytest.raises(StateError, match="no dataset_description.json"):
        archive.getBidsRun(subject="01", task="faces")
    with pytest.raises(StateError, match="does not exist"):
        BidsArchive(tmp_path / "missing").getImages()


def test_append_incremental_and_get_images(tmp_path):
    archive = BidsArchive(tmp_path / "ds")
    written = incremental(shape=(8, 9, 5, 2))
    archive.appendIncremental(written)
    (found,) = archive.getImages(subject="01")
    md = archive.getSidecarMetadata(found)
    md.pop("extension", None)
    written.removeMetadataField("AcquisitionTime")  # a volume's, not written for a run
    assert BidsIncremental(found, md) == written
    assert archive.getImages(matchExact=True, subject="01") == []
    assert archive.getTasks() == ["faces"]


def test_reading_a_dataset_we_did_not_write(tmp_path):
    """A dataset laid out by hand, with a top-level sidecar and events file that its runs
    inherit, and a compressed image."""
    root = tmp_path / "ds"
    func = root / "sub-07" / "ses-a" / "func"
    func.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "hand made", "BIDSVersion": "1.8.0"})
    )
    (root / "README").write_text("hand made dataset\n")
    (root / "task-nback_bold.json").write_text(
        json.dumps({"RepetitionTime": 1.0, "TaskName": "nback"})
    )
    (root / "task-nback_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\tx\n")
    nib.save(image((8, 9, 5, 4), tr=1.0), func / "sub-07_ses-a_task-nback_run-02_bold.nii.gz")
    run = BidsArchive(root).getBidsRun(subject="07", task="nback")
    assert run.numIncrementals() == 4
    inc = run.getIncremental(0)
    assert inc.getMetadataField("RepetitionTime") == 1.0
    assert inc.getMetadataField("session") == "a" and int(inc.getMetadataField("run")) == 2
    assert list(run.events["trial_type"]) == ["x"]
    assert inc.readme == "hand made dataset\n"
    assert inc.getDatasetName() == "hand made"
    assert os.path.basename(inc.getImageFilePath()) == "sub-07_ses-a_task-nback_run-2_bold.nii"


def test_appending_volume_by_volume_the_way_old_rt_cloud_scripts_do(tmp_path, sample_dicom_dir):
    """RT-Cloud's older scripts append each volume to the archive: the second volume was
    refused ("a run is never overwritten") and ``_appendIncremental`` did not exist. The
    volumes now go at the end of the run, which reads back as the volumes given, and the
    dataset stays valid; its files are as readable as any other file the user writes."""
    from rtcloud.imaging.dicom import read_dicom_file
    from rtCommon.dicomToBidsService import dicomToBidsInc

    root = tmp_path / "ds"
    archive = BidsArchive(str(root))
    entities = {"subject": "01", "task": "faces", "run": 1}
    incs = [
        dicomToBidsInc(read_dicom_file(path), entities)
        for path in sorted(sample_dicom_dir.glob("*.dcm"))[1:4]
    ]
    with pytest.raises(StateError, match="makePath"):
        archive._appendIncremental(incs[0], makePath=False)
    assert archive._appendIncremental(incs[0]) is True
    for inc in incs[1:]:
        archive.appendIncremental(inc)
    run = BidsArchive(str(root)).getBidsRun(subject="01", task="faces", run=1)
    assert run.numIncrementals() == 3
    for i, inc in enumerate(incs):
        np.testing.assert_array_equal(run.getIncremental(i).getImageData(), inc.getImageData())
    assert_valid(root)
    umask = os.umask(0o022)
    os.umask(umask)
    for path in root.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_run_1_and_run_01_are_one_run(tmp_path):
    """A dataset holding ``run-01`` (as dcm2niix names it) got a second image ``run-1`` of
    the same run, and getBidsRun(run=1) then matched two images."""
    root = tmp_path / "ds"
    first = BidsRun(subject="01", task="faces", run=1)
    first.appendIncremental(incremental())
    written = Path(BidsArchive(str(root)).appendBidsRun(first))
    padded = written.with_name(written.name.replace("run-1_", "run-01_"))
    for path in written.parent.iterdir():
        path.rename(path.with_name(path.name.replace("run-1_", "run-01_")))
    assert padded.exists()
    archive = BidsArchive(str(root))
    again = BidsRun(subject="01", task="faces", run=1)
    again.appendIncremental(incremental(seed=3))
    with pytest.raises(StateError, match="already exists"):
        archive.appendBidsRun(again)
    archive.appendIncremental(incremental(seed=4))  # goes at the end of run-01
    assert sorted(p.name for p in padded.parent.iterdir()) == sorted(
        [
            padded.name,
            padded.name.replace(".nii", ".json"),
            padded.name.replace("bold.nii", "events.tsv"),
        ]
    )
    assert (
        BidsArchive(str(root)).getBidsRun(subject="01", task="faces", run=1).numIncrementals() == 2
    )


def test_a_scaled_image_keeps_its_values_when_written_or_sent(tmp_path):
    """An int16 image with scl_slope/scl_inter (dcm2niix writes Philips data so) read into a
    run was exact in memory, but written again or sent to another process its values were
    rounded a second time (errors of 0.004)."""
    import pickle

    root = tmp_path / "ds"
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    raw = np.random.default_rng(0).integers(0, 1000, size=(6, 7, 5, 4)).astype(np.int16)
    img = nib.Nifti1Image(raw, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.5, 10.0)
    img.header.set_zooms((2, 2, 2, 2.0))
    nib.save(img, func / "sub-01_task-rest_run-01_bold.nii.gz")
    (func / "sub-01_task-rest_run-01_bold.json").write_text(
        json.dumps({"RepetitionTime": 2.0, "TaskName": "rest"})
    )
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "s", "BIDSVersion": "1.8.0"})
    )
    truth = raw * 0.5 + 10.0  # what nibabel reads from the file
    archive = BidsArchive(str(root))
    run = archive.getBidsRun(subject="01", task="rest", run=1)
    inc = run.getIncremental(1)
    for copy in (BidsIncremental.from_wire(inc.to_wire()), pickle.loads(pickle.dumps(inc))):
        np.testing.assert_array_equal(copy.getImageData()[..., 0], truth[..., 1])
    out = tmp_path / "out"
    inc.writeToDisk(str(out))
    (written,) = out.rglob("*.nii")
    np.testing.assert_array_equal(nib.load(written).get_fdata()[..., 0], truth[..., 1])
    # matchExact finds run 1 in a dataset that writes run-01, as the plain query does
    assert (
        len(
            archive.getImages(
                matchExact=True, subject="01", task="rest", run=1, suffix="bold", datatype="func"
            )
        )
        == 1
    )


@pytest.mark.parametrize("entity", [{"run": "a"}, {"echo": "x"}])
def test_an_index_entity_that_is_no_number_is_refused_before_writing(tmp_path, entity):
    """``run="a"`` was written as ``run-a``, which the BIDS validator rejects."""
    from rtcloud.errors import ValidationError

    run = BidsRun()
    run.appendIncremental(incremental(**entity))
    with pytest.raises(ValidationError, match="whole number"):
        BidsArchive(str(tmp_path / "ds")).appendBidsRun(run)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
