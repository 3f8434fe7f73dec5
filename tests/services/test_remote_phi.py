"""No identifying DICOM value leaves a data service: files (getFile, getNewestFile,
watchFile and the RT-Cloud helper built on it) as well as streams, unless the service is
started with --send-identifying-dicom. A real data service process, the real Siemens
files, and pydicom reading what the script receives."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from test_remote import remote  # noqa: F401 (a fixture)

from helpers import wait_for
from rtcloud.errors import ValidationError
from rtcloud.imaging.retry import readRetryDicomFromDataInterface
from rtcloud.interfaces.client import ClientInterface

NAME = "001_000013_000003.dcm"
KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "DeviceSerialNumber",
    "ReferringPhysicianName",
)


def identifying(path):
    """The identifying values of a file, as text (each long enough not to occur by chance)."""
    ds = pydicom.dcmread(path)
    values = {str(ds.get(keyword) or "") for keyword in KEYWORDS}
    return sorted(v for v in values if len(v) >= 5)


def assert_anonymized(data: bytes, original) -> None:
    secrets = identifying(original)
    assert len(secrets) >= 4  # the real file does carry them
    assert [s for s in secrets if s.encode() in data] == []
    received = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert received.PixelData == pydicom.dcmread(original).PixelData


def connected(remote, tmp_path, *options):  # noqa: F811
    """A script's client, once a data service (with ``options``) and a subject service are."""
    server, start = remote
    start("data-service", "-d", str(tmp_path), "-f", ".dcm", *options)
    start("subject-service", "-o", str(tmp_path / "out"))
    wait_for(lambda: server.all_services_connected(), what="the services")
    return ClientInterface()


@pytest.fixture
def scanner(sample_dicom_dir, tmp_path):
    folder = tmp_path / "scanner"
    folder.mkdir()
    shutil.copyfile(sample_dicom_dir / NAME, folder / NAME)
    return folder


def test_files_leave_the_data_service_anonymized(remote, scanner, tmp_path):  # noqa: F811
    client = connected(remote, tmp_path)
    try:
        data = client.dataInterface
        original = scanner / NAME
        assert_anonymized(data.getFile(str(original)), original)
        assert_anonymized(data.getNewestFile(str(scanner / "*.dcm")), original)
        data.initWatch(str(scanner), "*.dcm", 0)
        assert_anonymized(data.watchFile(str(original), timeout=5), original)
        ds = readRetryDicomFromDataInterface(data, str(original), timeout=5)
        assert str(ds.PatientName) not in identifying(original)
        with pytest.raises(ValidationError, match="--send-identifying-dicom"):
            data.initScannerStream(str(scanner), "*.dcm", 0, anonymize=False)
    finally:
        client.close()


def test_the_operator_may_let_files_leave_as_they_are(remote, scanner, tmp_path):  # noqa: F811
    client = connected(remote, tmp_path, "--send-identifying-dicom")
    try:
        data = client.dataInterface
        original = scanner / NAME
        assert data.getFile(str(original)) == original.read_bytes()
        stream = data.initScannerStream(str(scanner), "*.dcm", 0, anonymize=False)
        ds = data.getImageData(stream, 0, timeout=5)
        assert str(ds.PatientName) == str(pydicom.dcmread(original).PatientName)
    finally:
        client.close()
