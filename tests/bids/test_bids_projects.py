"""The BIDS example projects run as a user runs them: on their own (local files), and
against a project server whose data service is another process (remote data)."""

from __future__ import annotations

import subprocess
import sys

from bidstools import assert_valid

from helpers import REPO, start_service, wait_for
from rtcloud.bids.archive import BidsArchive
from rtcloud.simulate.synthetic import generate_series

DICOM_PROJECT = REPO / "projects" / "dicomBidsStream"
OPENNEURO_PROJECT = REPO / "projects" / "openNeuroClient"


def run_script(script, config, *args):
    out = subprocess.run(
        [sys.executable, "-u", str(script), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def dicom_config(tmp_path, volumes=6):
    scanner = tmp_path / "scanner"
    generate_series(scanner, num_volumes=volumes, shape=(64, 64, 27), scan=1)
    text = (DICOM_PROJECT / "conf" / "dicomBidsStream.toml").read_text()
    text = text.replace('imgDir = "/tmp/scanner"', f'imgDir = "{scanner}"')
    text = text.replace("numVolumes = 10", f"numVolumes = {volumes}")
    text = text.replace(
        'bidsArchiveDir = "/tmp/rtcloud-bids"', f'bidsArchiveDir = "{tmp_path}/bids"'
    )
    config = tmp_path / "dicomBidsStream.toml"
    config.write_text(text)
    return config


def check_dicom_output(stdout, tmp_path, volumes=6):
    assert stdout.count("| TR ") == volumes
    assert "sub-01_task-faces_run-1_bold.nii" in stdout
    assert "dicomBidsStream: all runs complete" in stdout
    assert_valid(tmp_path / "bids")
    run = BidsArchive(tmp_path / "bids").getBidsRun(subject="01", task="faces", run=1)
    assert run.numIncrementals() == volumes


def test_dicom_bids_stream_project_locally(tmp_path):
    config = dicom_config(tmp_path)
    stdout = run_script(DICOM_PROJECT / "dicomBidsStream.py", config, "-y")
    check_dicom_output(stdout, tmp_path)


def test_dicom_bids_stream_project_with_remote_data(server_factory, tmp_path):
    config = dicom_config(tmp_path)
    server = server_factory(data_remote=True)
    service = start_service("data-service", server, "-d", str(tmp_path), "-f", ".dcm")
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        stdout = run_script(DICOM_PROJECT / "dicomBidsStream.py", config)
        check_dicom_output(stdout, tmp_path)
    finally:
        service.kill()
        service.communicate(timeout=10)


def openneuro_config(tmp_path):
    text = (OPENNEURO_PROJECT / "conf" / "openNeuroClient.toml").read_text()
    text = text.replace('dsAccessionNumber = "ds000102"', 'dsAccessionNumber = "ds000001"')
    text = text.replace('taskName = "flanker"', 'taskName = "nback"')
    text = text.replace("runNum = [1]", "runNum = [2]")
    text = text.replace('bidsArchiveDir = ""', f'bidsArchiveDir = "{tmp_path}/replayed"')
    config = tmp_path / "openNeuroClient.toml"
    config.write_text(text)
    return config


def check_openneuro_output(stdout, tmp_path):
    assert "ds000001 sub-01 run 2: 12 volumes" in stdout
    assert stdout.count("| average activation value for TR") == 12
    assert_valid(tmp_path / "replayed")


def test_openneuro_project_locally(openneuro_env, tmp_path):
    config = openneuro_config(tmp_path)
    stdout = run_script(OPENNEURO_PROJECT / "openNeuroClient.py", config, "-y", "-a")
    check_openneuro_output(stdout, tmp_path)


def test_openneuro_project_with_remote_data(openneuro_env, server_factory, tmp_path):
    config = openneuro_config(tmp_path)
    server = server_factory(data_remote=True)
    service = start_service("data-service", server, "-d", str(tmp_path), "-f", ".dcm")
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        stdout = run_script(OPENNEURO_PROJECT / "openNeuroClient.py", config, "-a")
        check_openneuro_output(stdout, tmp_path)
    finally:
        service.kill()
        service.communicate(timeout=10)
