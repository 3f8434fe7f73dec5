"""A data service's large result reaches the script while it still arrives at the server;
a link cut in the middle of one is a clear error, and the volume is asked for again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from test_remote import remote  # noqa: F401 (a fixture)

from helpers import CuttingProxy, wait_for
from rtcloud.errors import ServiceUnavailableError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.simulate.synthetic import generate_series

PATTERN = "001_000013_{TR:06d}.dcm"


@pytest.fixture
def volumes(tmp_path):
    """Three 2.5 MB volumes in a scanner folder (more than two chunks each)."""
    series = generate_series(tmp_path / "series", num_volumes=3, shape=(128, 128, 80), scan=13)
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    for path in series:
        shutil.copyfile(path, scanner / path.name)
    assert all(path.stat().st_size > 2_500_000 for path in series)
    return scanner


def test_a_volume_cut_off_mid_way_is_a_clear_error_and_comes_again(remote, volumes, tmp_path):  # noqa: F811
    server, start = remote
    host, port = server.url.split("//")[1].rstrip("/").rsplit(":", 1)
    proxy = CuttingProxy((host, int(port)))
    env = dict(os.environ, RTCLOUD_PASSWORD="test", PYTHONUNBUFFERED="1")
    service = subprocess.Popen(
        [sys.executable, "-m", "rtcloud", "data-service", "-s", f"127.0.0.1:{proxy.port}",
         "-u", "test", "-d", str(tmp_path), "-f", ".dcm"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    start("subject-service", "-o", str(tmp_path / "out"))
    client = ClientInterface()
    try:
        wait_for(lambda: server.all_services_connected(), what="the services")
        data = client.dataInterface
        stream = data.initScannerStream(str(volumes), PATTERN, 0)
        first = data.getImageData(stream, timeout=10)  # volume 0, whole
        assert int(first.InstanceNumber) == 1 and len(first.PixelData) > 2_500_000
        proxy.arm(1_500_000, toward="upstream")  # the link drops 1.5 MB into the next volume
        with pytest.raises(ServiceUnavailableError) as caught:
            data.getImageData(stream, timeout=10)
        message = str(caught.value)
        assert "getImageData: the result stopped arriving before it was whole" in message
        assert "call again" in message
        assert proxy.cuts == 1
        # the data service reconnects by itself; asked for the next volume, the server
        # asks for the one that was cut off again
        wait_for(lambda: server.all_services_connected(), timeout=30, what="a reconnection")
        again = data.getImageData(stream, timeout=10)
        assert int(again.InstanceNumber) == 2 and len(again.PixelData) == len(first.PixelData)
        assert int(data.getImageData(stream, timeout=10).InstanceNumber) == 3
    finally:
        client.close()
        service.kill()
        service.communicate(timeout=10)
        proxy.close()
