"""``rtcloud replay`` of a BIDS dataset's run and of an OpenNeuro run: the DICOMs it writes
convert back to the run's voxels, and a DICOM-reading stream takes them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from bidstools import incremental

from rtcloud.bids.archive import BidsArchive
from rtcloud.bids.run import BidsRun
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.nifti import dicom_to_nifti
from rtcloud.imaging.sidecar import bids_sidecar


def rtcloud(*args, timeout=300):
    out = subprocess.run(
        [sys.executable, "-m", "rtcloud", *args], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_replay_a_bids_run_as_dicoms(tmp_path):
    run = BidsRun()
    for i in range(4):
        run.appendIncremental(incremental(seed=i, shape=(8, 9, 5), RepetitionTime=0.05))
    BidsArchive(tmp_path / "ds").appendBidsRun(run)
    stdout = rtcloud("replay", str(tmp_path / "ds"), str(tmp_path / "scanner"), "--subject", "01")
    assert "replayed 4 volumes" in stdout
    files = sorted((tmp_path / "scanner").glob("001_000001_*.dcm"))
    assert len(files) == 4
    for i, path in enumerate(files):
        ds = read_dicom_file(path)
        image = dicom_to_nifti(ds)
        np.testing.assert_array_equal(
            np.asanyarray(image.dataobj), run.getIncremental(i).getImageData()[..., 0]
        )
        np.testing.assert_allclose(image.header.get_zooms()[:3], (3.0, 3.0, 3.5))
        sidecar = bids_sidecar(ds, image.shape)
        assert sidecar["RepetitionTime"] == 0.05
        assert sidecar["ProtocolName"] == "func_task-faces_run-1"


def test_replay_an_openneuro_run(openneuro_env, tmp_path):
    stdout = rtcloud(
        "replay", "ds000001", str(tmp_path / "scanner"), "--subject", "02", "--run", "1",
        "--tr", "0.01",
    )  # fmt: skip
    assert "replayed 12 volumes" in stdout
    run = BidsArchive(tmp_path / "openneuro-cache" / "ds000001").getBidsRun(subject="02")
    last = read_dicom_file(sorted((tmp_path / "scanner").glob("*.dcm"))[-1])
    np.testing.assert_array_equal(
        np.asanyarray(dicom_to_nifti(last).dataobj), run.getIncremental(11).getImageData()[..., 0]
    )
