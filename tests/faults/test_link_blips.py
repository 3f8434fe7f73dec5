"""A data link that drops for a moment mid-scan does not end an unchanged script's run.

Real processes (server, data and subject services), the data service behind a NetworkProxy
whose connections the test cuts. The script is what RT-Cloud scripts are: it calls
``getImageData`` once per volume and does not catch or retry anything. Before, a cut of
under a second made the pending call raise ServiceUnavailableError at once and the run
failed, although the service was back within a second.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

import pytest
from campaign import PATTERN, Rig

from helpers import wait_for
from rtcloud.interfaces.client import ClientInterface
from rtcloud.simulate.synthetic import generate_series

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals in the rig")


@pytest.fixture
def rig(tmp_path, project_dir, monkeypatch):
    monkeypatch.setenv("RTCLOUD_SERVER_INFO", str(tmp_path / "server.json"))
    rig = Rig(tmp_path, project_dir)
    yield rig
    rig.close()


def test_a_pending_read_waits_out_a_dropped_data_link(rig, tmp_path):
    files = generate_series(tmp_path / "source", num_volumes=6, shape=(32, 32, 8), scan=13)
    client = ClientInterface()
    try:
        data = client.dataInterface
        stream = data.initScannerStream(str(rig.scanner), PATTERN, 0)
        shutil.copyfile(files[0], rig.scanner / files[0].name)
        assert data.getImageData(stream, timeout=10).InstanceNumber == 1
        # the script waits for volume 1; the link drops meanwhile, then the volume comes
        got = {}

        def script_waits():
            try:
                got["ds"] = data.getImageData(stream, timeout=10)
            except Exception as exc:  # what an unchanged script would die of
                got["error"] = exc

        waiting = threading.Thread(target=script_waits)
        waiting.start()
        time.sleep(0.3)
        rig.proxies["data"].cut()
        wait_for(lambda: rig.proxies["data"].accepted >= 2, what="the data service back")
        shutil.copyfile(files[1], rig.scanner / files[1].name)
        waiting.join(15)
        assert "error" not in got, (got.get("error"), "\n".join(rig.server.lines[-15:]))
        assert got["ds"].InstanceNumber == 2
        # a listing cut while it is asked: made again on the new link
        listing = {}
        lister = threading.Thread(
            target=lambda: listing.setdefault("files", data.listFiles(str(rig.scanner / "*")))
        )
        rig.proxies["data"].cut()
        lister.start()
        lister.join(15)
        assert len(listing["files"]) == 2
        # and the run goes on where it was
        shutil.copyfile(files[2], rig.scanner / files[2].name)
        assert data.getImageData(stream, timeout=10).InstanceNumber == 3
    finally:
        client.close()
