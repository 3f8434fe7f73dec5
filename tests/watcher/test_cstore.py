"""The DICOM node (C-STORE SCP) against senders we did not write: pynetdicom's storescu
application and dcmtk's storescu, on 127.0.0.1, pushing real files."""

from __future__ import annotations

import io
import logging
import shutil
import ssl
import subprocess
import sys
import threading

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification

from rtcloud.errors import InvocationError, ValidationError
from rtcloud.simulate.synthetic import generate_series
from rtcloud.tls import ensure_self_signed
from rtcloud.watcher.cstore import (
    OUT_OF_RESOURCES,
    DicomReceiver,
    check_ae_title,
    file_name_for,
)


@pytest.fixture
def series(tmp_path):
    """A synthetic Siemens mosaic series (scan 13, instances 1..5)."""
    folder = tmp_path / "series"
    generate_series(folder, num_volumes=5, shape=(32, 32, 8), scan=13)
    return sorted(folder.iterdir())


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


class Recorder:
    """Collects what the receiver hands over, and wakes a waiter at a count."""

    def __init__(self) -> None:
        self.images = []
        self._cond = threading.Condition()

    def __call__(self, image) -> None:
        with self._cond:
            self.images.append(image)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 30) -> list:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.images) >= count, timeout), (
                f"{len(self.images)} of {count} images arrived"
            )
            return list(self.images)


def pynetdicom_storescu(address, paths, calling="SCANNER", called="RTCLOUD", *extra):
    """pynetdicom's own storescu application, as a separate process."""
    host, port = address
    cmd = [sys.executable, "-m", "pynetdicom", "storescu", host, str(port)]
    cmd += [str(p) for p in paths] if len(paths) == 1 else [str(paths[0].parent), "-cx"]
    cmd += ["-aet", calling, "-aec", called, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def dcmtk_storescu(address, paths, calling="SCANNER", called="RTCLOUD", *extra):
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk's storescu is not installed (Debian: apt-get install dcmtk)")
    host, port = address
    cmd = ["storescu", "-aet", calling, "-aec", called, *extra, host, str(port)]
    return subprocess.run(
        cmd + [str(p) for p in paths], capture_output=True, text=True, timeout=120
    )


def same_content(received: bytes, original: bytes) -> None:
    """The data set as sent, element for element (the file meta is the receiver's)."""
    a = pydicom.dcmread(io.BytesIO(received))
    b = pydicom.dcmread(io.BytesIO(original))
    assert a.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPClassUID == b.SOPClassUID
    assert list(a.keys()) == list(b.keys())
    assert a == b
    assert a.PixelData == b.PixelData


@pytest.mark.parametrize("sender", [pynetdicom_storescu, dcmtk_storescu])
def test_a_pushed_series_is_written_whole_and_named_as_the_real_time_export(sender, series, inbox):
    got = Recorder()
    with DicomReceiver(inbox, calling_ae_titles=["SCANNER"], on_image=got) as node:
        done = sender(node.address, series)
        assert done.returncode == 0, done.stdout + done.stderr
        images = got.wait(len(series))
    names = sorted(p.name for p in inbox.iterdir())
    assert names == [f"001_000013_{i:06d}.dcm" for i in range(1, 6)]  # no temporary left
    for path in series:
        original = pydicom.dcmread(path)
        written = inbox / f"001_000013_{original.InstanceNumber:06d}.dcm"
        same_content(written.read_bytes(), path.read_bytes())
    for image in images:
        assert image.path.read_bytes() == image.data
        assert image.dataset.InstanceNumber == int(image.path.name[-10:-4])
        assert image.calling_ae == "SCANNER" and image.received > 0
    assert node.received_count == 5


def test_dcmtk_sends_implicit_vr_and_every_file_still_reads(series, inbox):
    got = Recorder()
    with DicomReceiver(inbox, on_image=got) as node:
        done = dcmtk_storescu(node.address, series, "ANY", "RTCLOUD", "--propose-implicit")
        assert done.returncode == 0, done.stdout + done.stderr
        images = got.wait(len(series))
    for image in images:
        assert image.dataset.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
        original = pydicom.dcmread(series[image.dataset.InstanceNumber - 1])
        assert image.dataset.PixelData == original.PixelData
        assert image.dataset.SeriesInstanceUID == original.SeriesInstanceUID


@pytest.mark.parametrize("sender", [pynetdicom_storescu, dcmtk_storescu])
def test_other_calling_or_called_ae_titles_are_rejected(sender, series, inbox, caplog):
    caplog.set_level(logging.WARNING, "rtcloud.watcher.cstore")
    with DicomReceiver(inbox, calling_ae_titles=["SCANNER", "CONSOLE2"]) as node:
        stranger = sender(node.address, series[:1], "STRANGER", "RTCLOUD")
        wrong_node = sender(node.address, series[:1], "SCANNER", "OTHERNODE")
        friend = sender(node.address, series[:1], "CONSOLE2", "RTCLOUD")
    assert stranger.returncode != 0 and wrong_node.returncode != 0
    assert "reject" in (stranger.stdout + stranger.stderr).lower()
    assert friend.returncode == 0
    assert [p.name for p in inbox.iterdir()] == ["001_000013_000001.dcm"]
    assert "'STRANGER'" in caplog.text and "allow list" in caplog.text


def test_tls_associations(series, inbox, tmp_path):
    cert, key, _ = ensure_self_signed(tmp_path / "tls")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    got = Recorder()
    with DicomReceiver(inbox, ssl_context=server, on_image=got) as node:
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        client.check_hostname = False
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(MRImageStorage, pydicom.uid.ExplicitVRLittleEndian)
        assoc = ae.associate(*node.address, ae_title="RTCLOUD", tls_args=(client, None))
        assert assoc.is_established
        status = assoc.send_c_store(pydicom.dcmread(series[0]))
        assoc.release()
        assert status.Status == 0x0000
        assert got.wait(1)[0].path.name == "001_000013_000001.dcm"
        # a sender without TLS gets nowhere
        plain = pynetdicom_storescu(node.address, series[1:2])
        assert plain.returncode != 0
    assert [p.name for p in inbox.iterdir()] == ["001_000013_000001.dcm"]


def test_a_failed_write_is_reported_to_the_sender(series, inbox, caplog):
    with DicomReceiver(inbox) as node:
        inbox.rmdir()  # the folder is gone: the image cannot be written
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(MRImageStorage, pydicom.uid.ExplicitVRLittleEndian)
        assoc = ae.associate(*node.address, ae_title="RTCLOUD")
        status = assoc.send_c_store(pydicom.dcmread(series[0]))
        assoc.release()
    assert status.Status == OUT_OF_RESOURCES
    assert "cannot write received DICOM image" in caplog.text


def test_the_console_echo_is_answered(inbox):
    with DicomReceiver(inbox, calling_ae_titles=["SCANNER"]) as node:
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(Verification)
        assoc = ae.associate(*node.address, ae_title="RTCLOUD")
        status = assoc.send_c_echo()
        assoc.release()
    assert status.Status == 0x0000


def test_listening_beyond_loopback_needs_tls_or_an_explicit_choice(inbox):
    with pytest.raises(InvocationError, match="without TLS"):
        DicomReceiver(inbox, host="0.0.0.0")
    DicomReceiver(inbox, host="0.0.0.0", insecure=True)  # allowed, logged when started
    with pytest.raises(ValidationError, match="does not exist"):
        DicomReceiver(inbox / "missing")
    with pytest.raises(ValidationError, match="AE title"):
        DicomReceiver(inbox, ae_title="A" * 17)
    with pytest.raises(ValidationError, match="AE title"):
        check_ae_title("BACK\\SLASH")
    with pytest.raises(ValidationError, match="keyword"):
        DicomReceiver(inbox, name_pattern="{0}.dcm")


def test_file_names():
    ds = pydicom.Dataset()
    ds.SeriesNumber, ds.InstanceNumber = 7, 12
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    assert file_name_for(ds) == "001_000007_000012.dcm"
    assert file_name_for(ds, "{SeriesNumber}-{InstanceNumber:04d}.dcm") == "7-0012.dcm"
    del ds.InstanceNumber  # without the attributes: named by a hash of the instance UID
    name = file_name_for(ds)
    assert name.startswith("sop-") and name.endswith(".dcm") and "3680043" not in name
