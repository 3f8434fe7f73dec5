"""webInterface.sendQuality: checked, kept for late pages, bytes and NaN made page-ready;
the project server's hop times joined to each record."""

from __future__ import annotations

import base64
import math
import shutil
import threading
import time

import numpy as np
import pytest

from rtcloud.errors import ValidationError
from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.expose import expose
from rtcloud.interfaces.web import QUALITY_KEEP, WebDisplayInterface
from rtcloud.server.hub import Hub
from rtcloud.server.timeline import VolumeTimeline


def test_a_record_reaches_the_page_ready_for_json_and_is_kept():
    sent = []
    web = WebDisplayInterface(sink=sent.append)
    record = {
        "motion": [np.float64(0.1), float("nan"), 0, 0, 0, 0],
        "fd": np.float32(0.25),
        "slices": {"views": [{"name": "axial", "grey": b"\x00\x01\xff"}]},
    }
    web.sendQuality(1, 3, record)
    message = sent[-1]
    assert message["cmd"] == "quality"
    assert message["record"]["motion"][:2] == [0.1, None]
    assert message["record"]["fd"] == pytest.approx(0.25)
    assert message["record"]["runId"] == 1 and message["record"]["trId"] == 3
    assert base64.b64decode(message["slices"]["views"][0]["grey"]) == b"\x00\x01\xff"
    state = web.quality_state()
    assert [r["trId"] for r in state["value"]] == [3]
    assert "slices" not in state["value"][0] and state["slices"]["trId"] == 3
    web.clearQuality()
    assert sent[-1] == {"cmd": "setQuality", "value": [], "slices": None}


def test_bad_records_are_refused_with_what_is_wrong():
    web = WebDisplayInterface(sink=lambda m: None)
    with pytest.raises(ValidationError, match="runId"):
        web.sendQuality(0, 1, {})
    with pytest.raises(ValidationError, match="trId"):
        web.sendQuality(1, math.nan, {})
    with pytest.raises(ValidationError, match="must be a dict"):
        web.sendQuality(1, 1, [1, 2])
    with pytest.raises(ValidationError, match="numbers, text, bytes"):
        web.sendQuality(1, 1, {"x": object()})
    with pytest.raises(ValidationError, match="larger than"):
        web.sendQuality(1, 1, {"x": b"0" * (5 * 1024 * 1024)})


def test_numpy_values_and_subclasses_become_plain_json_values():
    import enum
    import json

    class Level(enum.IntEnum):
        HIGH = 2

    sent = []
    web = WebDisplayInterface(sink=sent.append)
    web.sendQuality(
        np.int64(2),
        np.float32(4.0),
        {
            "motion": np.array([0.5, np.inf, -1.0]),
            "grid": np.arange(4, dtype=np.uint8).reshape(2, 2),
            "level": Level.HIGH,
            "ok": np.bool_(True),
            "nested": ({"a": (np.int16(7),)},),
        },
    )
    record = sent[-1]["record"]
    assert record["motion"] == [0.5, None, -1.0]
    assert record["grid"] == [[0, 1], [2, 3]]
    assert record["level"] == 2 and type(record["level"]) is int
    assert record["ok"] is True
    assert record["nested"] == [{"a": [7]}]
    assert record["runId"] == 2 and record["trId"] == 4.0
    json.dumps(sent[-1], allow_nan=False)  # what the page channel does with it


def test_the_size_limit_counts_every_value_and_nesting_is_bounded():
    web = WebDisplayInterface(sink=lambda m: None)
    with pytest.raises(ValidationError, match="larger than"):  # many small strings
        web.sendQuality(1, 1, {"x": ["a" * 1024] * (5 * 1024)})
    with pytest.raises(ValidationError, match="larger than"):  # one large array
        web.sendQuality(1, 1, {"x": np.zeros(1024 * 1024)})
    deep: dict = {"v": 1}
    for _ in range(10):
        deep = {"d": deep}
    with pytest.raises(ValidationError, match="nested too deeply"):
        web.sendQuality(1, 1, deep)
    assert web.quality_state()["value"] == []  # nothing refused was kept


def test_only_the_latest_records_are_kept():
    web = WebDisplayInterface(sink=lambda m: None)
    for tr in range(QUALITY_KEEP + 10):
        web.sendQuality(1, tr, {"fd": 0.1})
    kept = web.quality_state()["value"]
    assert len(kept) == QUALITY_KEEP and kept[0]["trId"] == 10


def test_the_server_adds_each_volumes_hops_before_the_script(tmp_path, sample_dicom_dir):
    folder = tmp_path / "scanner"
    folder.mkdir()
    hub = Hub()
    data = DataInterface(allowedDirs=["*"], allowedFileTypes=["*"])
    hub.register_local("DataInterface", data)
    timeline = VolumeTimeline(hub)
    web = WebDisplayInterface(sink=lambda m: None)
    web.quality_hook = timeline.enrich
    sent = []
    web.set_sink(sent.append)
    try:
        stream = hub.call("DataInterface", "initScannerStream", (str(folder), "v{TR}.dcm", 0), {})
        shutil.copy(sample_dicom_dir / "001_000013_000000.dcm", folder / "v0.dcm")
        time.sleep(0.05)  # the file is complete well before the script asks
        hub.call("DataInterface", "getImageData", (stream, 0), {"timeout": 5})
        received = time.time()
        timeline.flush(5)
        web.sendQuality(1, 0, {"timeline": {"received": received}})
        hops = sent[-1]["record"]["hops"]
        assert hops["waiting"] >= 40  # complete ~50 ms before the call
        assert 0 <= hops["scanner"] < 1000 and 0 <= hops["toScript"] < 1000
        assert sent[-1]["record"]["volume"] == {"stream": stream, "index": 0}
        times = data.getVolumeTimes(stream, 0)
        assert times["complete"] <= times["asked"] <= times["sent"] <= times["clock"]
        assert data.getVolumeTimes(stream, 5) == {
            "complete": None,
            "asked": None,
            "sent": None,
            "clock": pytest.approx(time.time(), abs=5),
        }
    finally:
        timeline.close()
        data.close()


class _SlowTimes(DataInterface):
    """A data interface whose volume times come only when the test says so."""

    release = threading.Event()

    @expose(quick=True)
    def getVolumeTimes(self, streamId: int, imageIndex: int) -> dict:
        assert self.release.wait(10)
        return super().getVolumeTimes(streamId, imageIndex)


def test_hops_that_come_after_the_record_complete_it_later(tmp_path, sample_dicom_dir):
    folder = tmp_path / "scanner"
    folder.mkdir()
    shutil.copy(sample_dicom_dir / "001_000013_000000.dcm", folder / "v0.dcm")
    hub = Hub()
    data = _SlowTimes(allowedDirs=["*"], allowedFileTypes=["*"])
    hub.register_local("DataInterface", data)
    sent = []
    web = WebDisplayInterface(sink=sent.append)
    timeline = VolumeTimeline(hub, on_update=web.update_quality)
    web.quality_hook = timeline.enrich
    try:
        stream = hub.call("DataInterface", "initScannerStream", (str(folder), "v{TR}.dcm", 0), {})
        hub.call("DataInterface", "getImageData", (stream, 0), {"timeout": 5})
        web.sendQuality(1, 0, {"timeline": {"received": time.time()}, "fd": 0.1})
        first = sent[-1]["record"]
        assert "waiting" not in first.get("hops", {})  # not known yet
        _SlowTimes.release.set()
        timeline.flush(10)
        again = sent[-1]
        assert again["cmd"] == "quality" and again["slices"] is None
        assert again["record"]["trId"] == 0 and "scanner" in again["record"]["hops"]
        assert again["record"]["fd"] == 0.1
        kept = web.quality_state()["value"]
        assert len(kept) == 1 and "scanner" in kept[0]["hops"]  # a late page gets it too
    finally:
        timeline.close()
        data.close()
