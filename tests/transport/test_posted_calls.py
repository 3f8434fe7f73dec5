"""Posted calls (webInterface.sendQuality through a real project server): checked in the
script, sent in order by a background thread, failures raised on the next call, nothing
queued lost when the script closes its ClientInterface."""

from __future__ import annotations

import inspect
import threading

import nibabel as nib
import numpy as np
import pytest

from rtcloud.errors import ServiceUnavailableError, ValidationError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.web import WebDisplayInterface
from rtcloud.preprocess import Pipeline


def _records(server):
    return server.web.quality_state()["value"]


def test_records_arrive_in_order_and_close_waits_for_the_queue(server):
    client = ClientInterface()
    try:
        for tr in range(300):
            client.webInterface.sendQuality(1, tr, {"fd": tr / 1000, "motion": [0.0] * 6})
    finally:
        client.close()  # returns once the queued records were delivered
    records = _records(server)
    assert [r["trId"] for r in records] == list(range(300))
    assert records[-1]["fd"] == pytest.approx(0.299)


def test_a_bad_record_raises_in_the_script_and_is_not_sent(server):
    client = ClientInterface()
    try:
        with pytest.raises(ValidationError, match="runId"):
            client.webInterface.sendQuality(0, 1, {})
        with pytest.raises(ValidationError, match="numbers, text, bytes"):
            client.webInterface.sendQuality(1, 1, {"x": threading.Lock()})
        with pytest.raises(ValidationError, match="larger than"):
            client.webInterface.sendQuality(1, 1, {"x": b"0" * (5 * 1024 * 1024)})
        client.webInterface.sendQuality(1, 2, {"fd": 0.1})
        assert client.rpcConn.flush_posted(10)
        assert [r["trId"] for r in _records(server)] == [2]
    finally:
        client.close()


def test_a_failed_delivery_is_raised_by_the_next_call(server_factory):
    server = server_factory()
    client = ClientInterface()
    try:
        client.webInterface.sendQuality(1, 0, {"fd": 0.1})
        assert client.rpcConn.flush_posted(10)
        server.stop()
        client.webInterface.sendQuality(1, 1, {"fd": 0.2})  # queued: returns at once
        assert client.rpcConn.flush_posted(20)  # its delivery failed meanwhile
        with pytest.raises(ServiceUnavailableError, match="earlier call was not delivered"):
            client.webInterface.sendQuality(1, 2, {"fd": 0.3})
    finally:
        client.close()


def test_pipeline_slices_are_drawn_on_the_sending_thread_and_reach_the_page(server, monkeypatch):
    rng = np.random.default_rng(3)
    volume = rng.normal(100, 5, (16, 16, 8)).astype(np.float32)
    mask = np.zeros(volume.shape, np.uint8)
    mask[6:10, 6:10, 3:5] = 1
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    pipe = Pipeline(rois={"box": nib.Nifti1Image(mask, affine)}, keep_volumes=True)
    result = pipe.process(nib.Nifti1Image(volume, affine))
    record = result.quality()
    drawn_by = []
    slices = record["slices"]
    original = type(slices).__page_value__

    def spy(self):
        drawn_by.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(type(slices), "__page_value__", spy)  # observes, then draws
    client = ClientInterface()
    try:
        client.webInterface.sendQuality(1, 0, record)
        assert client.rpcConn.flush_posted(10)
    finally:
        client.close()
    assert drawn_by == ["rtcloud-posted"]
    state = server.web.quality_state()
    assert [v["name"] for v in state["slices"]["views"]] == ["axial", "coronal", "sagittal"]
    assert state["slices"]["rois"] == ["box"] and state["slices"]["trId"] == 0


def test_the_proxy_reads_like_the_local_method(server):
    client = ClientInterface()
    try:
        proxy = client.webInterface.sendQuality
        local = WebDisplayInterface.sendQuality
        assert proxy.__doc__ == local.__doc__
        assert list(inspect.signature(proxy).parameters)[:3] == ["runId", "trId", "quality"]
    finally:
        client.close()


EXITS_WITHOUT_CLOSE = """
from rtcloud import ClientInterface
ci = ClientInterface(yesToPrompts=True)
assert ci.isUsingProjectServer()
for tr in range(50):
    ci.webInterface.sendQuality(1, tr, {"fd": 0.01 * tr, "note": "x" * 2000})
print("posted", flush=True)
"""


def test_a_script_that_exits_without_closing_still_delivers_what_it_posted(server):
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_CLOSE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RTCLOUD_SERVER_INFO": str(server.info_path)},
    )
    assert proc.returncode == 0 and "posted" in proc.stdout, proc.stdout + proc.stderr
    assert [r["trId"] for r in _records(server)] == list(range(50))
