"""A scanner pushes a series over DICOM (C-STORE) into a running session: a project server,
a remote data service started as ``rtcloud data-service --dicom-listen`` and a script that
gets every volume. The scanner is a real sender we did not write: pynetdicom's storescu
application, and dcmtk's storescu where it is installed."""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest

from helpers import wait_for
from rtcloud.interfaces.client import ClientInterface
from rtcloud.simulate.synthetic import generate_series

LISTENING = re.compile(r"DICOM node (\S+) listening on ([\d.]+):(\d+)")


class Service:
    """``rtcloud data-service`` as a process; its output lines, read as they come."""

    def __init__(self, server, *args: str) -> None:
        env = dict(os.environ, RTCLOUD_PASSWORD="test", PYTHONUNBUFFERED="1")
        host = server.url.split("//")[1].rstrip("/")
        cmd = [sys.executable, "-m", "rtcloud", "data-service", "-s", host, "-u", "test", *args]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern.pattern}: {self.output}"
                ) from None
            found = pattern.search(line)
            if found:
                return found

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)  # it ends at the end of the output
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def session(server_factory):
    server = server_factory(data_remote=True)
    services: list[Service] = []

    def start(*args: str) -> Service:
        service = Service(server, *args)
        services.append(service)
        return service

    yield server, start
    for service in services:
        service.stop()


def storescu_command(kind: str, host: str, port: str, folder: Path) -> list[str]:
    if kind == "pynetdicom":
        return [sys.executable, "-m", "pynetdicom", "storescu", host, port, str(folder), "-cx"]
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk's storescu is not installed (Debian: apt-get install dcmtk)")
    files = sorted(str(p) for p in folder.iterdir())
    return ["storescu", host, port, *files]


@pytest.mark.parametrize("sender", ["pynetdicom", "dcmtk"])
def test_storescu_pushes_a_series_into_a_running_session(sender, session, tmp_path):
    server, start = session
    series = tmp_path / "console"  # what the scanner sends from
    originals = generate_series(series, num_volumes=8, shape=(32, 32, 8), scan=7)
    inbox = tmp_path / "allowed" / "dicom"
    service = start(
        "-d", str(tmp_path / "allowed"), "-f", ".dcm",
        "--dicom-listen", "127.0.0.1:0", "--ae-title", "RTNODE",
        "--dicom-dir", str(inbox), "--calling-ae", "SCANNER",
    )  # fmt: skip
    title, host, port = service.wait_for_line(LISTENING).groups()
    assert title == "RTNODE"
    wait_for(lambda: server.channels["data"].connected, what="data service")
    client = ClientInterface()
    try:
        data = client.dataInterface
        stream = data.initScannerStream(str(inbox), "001_000007_{TR:06d}.dcm", 1000)
        scanner = subprocess.Popen(
            [*storescu_command(sender, host, port, series), "-aet", "SCANNER", "-aec", "RTNODE"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        volumes = [data.getImageData(stream, tr, timeout=30) for tr in range(1, 9)]
        output, _ = scanner.communicate(timeout=60)
        assert scanner.returncode == 0, output
        for volume, path in zip(volumes, originals, strict=True):
            original = pydicom.dcmread(path)
            assert volume.InstanceNumber == original.InstanceNumber
            assert str(volume.PatientName) == "" and original.PatientName  # anonymized there
            assert volume.SOPInstanceUID != original.SOPInstanceUID
            assert volume.PixelData == original.PixelData
        # the pushed files are files like any other: listed and read through the service
        listed = data.listFiles(str(inbox / "*.dcm"))
        assert [Path(p).name for p in listed] == [f"001_000007_{i:06d}.dcm" for i in range(1, 9)]
        got = pydicom.dcmread(io.BytesIO(data.getFile(listed[0])))  # anonymized, as streams
        kept = pydicom.dcmread(inbox / "001_000007_000001.dcm")
        assert got.PixelData == kept.PixelData and str(got.PatientName) == ""
    finally:
        client.close()


def test_a_receive_folder_outside_the_allowed_ones_is_refused(session, tmp_path):
    _, start = session
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    service = start(
        "-d", str(allowed), "--dicom-listen", "127.0.0.1:0",
        "--dicom-dir", str(tmp_path / "elsewhere"),
    )  # fmt: skip
    assert service.proc.wait(timeout=60) == 2
    assert "not within the allowed directories" in "".join(service.output)
    assert not (tmp_path / "elsewhere").exists()
