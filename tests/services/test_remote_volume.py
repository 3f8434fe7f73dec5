"""getVolume over a real data service process, for each layout, against dcm2niix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_remote import remote  # noqa: F401 (a fixture)

from dcm2niix_oracle import SERIES_START, assert_volume_matches_dcm2niix
from helpers import wait_for
from rtcloud.imaging.nifti import VolumeImage
from rtcloud.interfaces.client import ClientInterface
from rtcloud.simulate.synthetic import generate_series

SHAPE = (16, 12, 6)
PATTERN = "001_000013_{TR:06d}.dcm"


def scanner_folder(tmp_path: Path, layout: str) -> tuple[list[Path], Path]:
    """A 3-volume synthetic series of ``layout``, and the scanner folder holding a copy."""
    series = generate_series(
        tmp_path / "series",
        num_volumes=3,
        shape=SHAPE,
        layout=layout,
        scan=13,
        start=SERIES_START,
    )
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    for path in series:
        shutil.copyfile(path, scanner / path.name)
    return series, scanner


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices", "enhanced-slices"])
def test_get_volume_over_the_data_service(remote, layout, tmp_path):  # noqa: F811
    """Remote mode: the data service assembles the volume; the script gets the image, voxel
    for voxel, with its sidecar."""
    server, start = remote
    series, scanner = scanner_folder(tmp_path, layout)
    start("data-service", "-d", str(tmp_path), "-f", ".dcm")
    start("subject-service", "-o", str(tmp_path / "out"))
    wait_for(lambda: server.all_services_connected(), what="the services")
    client = ClientInterface()
    try:
        data = client.dataInterface
        stream = data.initScannerStream(str(scanner), PATTERN, 0)
        image = data.getVolume(stream, 2, timeout=10)
        per = SHAPE[2] if layout.endswith("slices") else 1
        assert isinstance(image, VolumeImage) and image.shape == SHAPE
        assert_volume_matches_dcm2niix(image, series[2 * per : 3 * per], tmp_path / "dcm2niix")
    finally:
        client.close()


def test_get_volume_goes_on_where_it_was_after_the_data_service_restarts(remote, tmp_path):  # noqa: F811
    """The server keeps the stream and its next volume: a restarted data service (whose
    own stream ids start again) is asked for the volume the script is at."""
    server, start = remote
    series, scanner = scanner_folder(tmp_path, "slices")
    other = tmp_path / "other"
    other.mkdir()
    service = start("data-service", "-d", str(tmp_path), "-f", ".dcm")
    start("subject-service", "-o", str(tmp_path / "out"))
    wait_for(lambda: server.all_services_connected(), what="the services")
    client = ClientInterface()
    try:
        data = client.dataInterface
        data.initScannerStream(str(other), "*.dcm", 0)  # the service's stream 1
        stream = data.initScannerStream(str(scanner), PATTERN, 0)
        first = data.getVolume(stream, timeout=10)
        service.kill()
        service.communicate(timeout=10)
        wait_for(lambda: not server.all_services_connected(), what="the service to go")
        start("data-service", "-d", str(tmp_path), "-f", ".dcm")
        wait_for(lambda: server.all_services_connected(), what="the service to come back")
        second = data.getVolume(stream, timeout=10)  # volume 1, from the new service
        assert_volume_matches_dcm2niix(second, series[SHAPE[2] : 2 * SHAPE[2]], tmp_path / "v1")
        assert not np.array_equal(np.asarray(first.dataobj), np.asarray(second.dataobj))
    finally:
        client.close()


def test_get_volume_of_the_real_siemens_series_over_the_data_service(
    remote,  # noqa: F811
    sample_dicom_dir,
    tmp_path,
):
    """The shared scanner series (Siemens mosaics), through the data service, is what dcm2niix
    makes of each file."""
    server, start = remote
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    names = ["001_000013_000001.dcm", "001_000013_000002.dcm"]
    for name in names:
        shutil.copyfile(sample_dicom_dir / name, scanner / name)
    start("data-service", "-d", str(tmp_path), "-f", ".dcm")
    start("subject-service", "-o", str(tmp_path / "out"))
    wait_for(lambda: server.all_services_connected(), what="the services")
    client = ClientInterface()
    try:
        data = client.dataInterface
        stream = data.initScannerStream(str(scanner), PATTERN, 1)
        for number, name in enumerate(names, start=1):
            image = data.getVolume(stream, number, timeout=10)
            assert image.shape == (64, 64, 27)
            assert_volume_matches_dcm2niix(image, [scanner / name], tmp_path / f"v{number}")
    finally:
        client.close()
