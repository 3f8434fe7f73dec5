"""Result files for MATLAB/PsychoPy readers: layout, atomic writes, names that cannot escape."""

from __future__ import annotations

import json
import threading
import time

import pytest

from rtcloud.errors import ValidationError
from rtcloud.services.result_files import ResultFileWriter


def test_set_result_writes_text_and_json(tmp_path):
    writer = ResultFileWriter(tmp_path / "out")
    written = writer.write(
        {"runId": 2, "trId": 7, "value": 0.25, "onsetTimeDelayMs": 500, "timestamp": 1.5}
    )
    txt = tmp_path / "out" / "run2" / "classoutput" / "vol-2-7.txt"
    js = tmp_path / "out" / "run2" / "results" / "vol-2-7.json"
    assert written == [txt, js]
    assert txt.read_text() == "0.25\n"
    record = json.loads(js.read_text())
    assert record["value"] == 0.25 and record["onsetTimeDelayMs"] == 500 and "writtenAt" in record


def test_result_dict_with_name(tmp_path):
    writer = ResultFileWriter(tmp_path)
    writer.write({"a": 1, "b": [1, 2], "name": "trial_5", "onsetTimeDelayMs": 0, "timestamp": 2})
    assert json.loads((tmp_path / "trial_5.json").read_text())["b"] == [1, 2]


def test_a_named_dict_holding_run_and_tr_keys_is_written_under_its_name(tmp_path):
    """A setResultDict's values may hold runId/trId/value: they were taken for a setResult,
    overwriting that volume's result file, and the named file was never written."""
    writer = ResultFileWriter(tmp_path)
    writer.write({"runId": 1, "trId": 5, "value": 0.25, "onsetTimeDelayMs": 0, "timestamp": 1})
    writer.write(
        {"runId": 1, "trId": 5, "value": 99, "name": "summary-tr5", "onsetTimeDelayMs": 0}
    )
    writer.write({"runId": 1, "note": "no trId", "name": "partial", "onsetTimeDelayMs": 0})
    assert (tmp_path / "run1" / "classoutput" / "vol-1-5.txt").read_text() == "0.25\n"
    assert json.loads((tmp_path / "summary-tr5.json").read_text())["value"] == 99
    assert json.loads((tmp_path / "partial.json").read_text())["note"] == "no trId"


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", "..", "", "x" * 300, "a\\b"])
def test_names_cannot_escape(tmp_path, name):
    writer = ResultFileWriter(tmp_path / "out")
    with pytest.raises(ValidationError):
        writer.write({"name": name, "x": 1})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]


def test_bad_run_ids_are_refused(tmp_path):
    writer = ResultFileWriter(tmp_path)
    with pytest.raises(ValidationError):
        writer.write({"runId": "../../x", "trId": 1, "value": 1})
    with pytest.raises(ValidationError, match="missing"):
        writer.write({"runId": 1, "value": 1})


def test_readers_never_see_half_a_file(tmp_path):
    writer = ResultFileWriter(tmp_path)
    big = "v" * 200_000
    stop = threading.Event()
    bad = []
    target = tmp_path / "run1" / "classoutput" / "vol-1-1.txt"

    def reader():
        while not stop.is_set():
            try:
                text = target.read_text()
            except FileNotFoundError:
                continue
            if text not in (f"{big}\n", f"{big[:-1]}w\n"):
                bad.append(len(text))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(100):
        value = big if i % 2 else big[:-1] + "w"
        writer.write({"runId": 1, "trId": 1, "value": value})
    stop.set()
    thread.join()
    assert not bad


def test_background_writer_checks_at_once_writes_in_order_and_reports_failures(tmp_path):
    from rtcloud.services.result_files import BackgroundWriter

    out = tmp_path / "out"
    writer = BackgroundWriter(ResultFileWriter(out))
    try:
        with pytest.raises(ValidationError):  # a bad name fails the call itself
            writer.submit({"runId": "../x", "trId": 1, "value": 1})
        for tr in range(20):
            writer.submit({"runId": 1, "trId": tr, "value": tr / 10})
        writer.flush()
        folder = out / "run1" / "classoutput"
        assert [(folder / f"vol-1-{tr}.txt").read_text() for tr in range(20)] == [
            f"{tr / 10}\n" for tr in range(20)
        ]
        # each submit returns with its files on disk (the server counts the result as
        # delivered then): nothing confirmed is lost if the service is killed right after
        writer.submit({"runId": 1, "trId": 50, "value": 5.0})
        assert (folder / "vol-1-50.txt").read_text() == "5.0\n"
        # a folder that cannot be written: the failure comes back on that very call, naming
        # its file (it came back on a later call, naming that call's result)
        (out / "run2").write_text("a file where the run folder should be")
        with pytest.raises(OSError, match="could not write the result file .*run2"):
            writer.submit({"runId": 2, "trId": 0, "value": 1.0})
        writer.submit({"runId": 1, "trId": 100, "value": 0.5})  # and the next goes on
        assert (folder / "vol-1-100.txt").read_text() == "0.5\n"
    finally:
        writer.close()


def test_background_writer_writes_large_records_whole(tmp_path):
    from rtcloud.services.result_files import BackgroundWriter

    writer = BackgroundWriter(ResultFileWriter(tmp_path))
    try:
        values = {"roi": list(range(200_000))}
        writer.submit({**values, "name": "big", "onsetTimeDelayMs": 0, "timestamp": 1.0})
        writer.flush()
        assert json.loads((tmp_path / "big.json").read_text())["roi"] == values["roi"]
        assert not list(tmp_path.glob(".*part"))  # no temporary file left behind
    finally:
        writer.close()


def test_the_subject_service_keeps_only_recent_results_in_memory(tmp_path):
    """Nothing in the subject service dequeues results: a long session must not grow."""
    from rtcloud.interfaces.subject import KEEP_RESULTS
    from rtcloud.services.subject_service import build_interfaces

    subject = build_interfaces(tmp_path)["SubjectInterface"]
    total = KEEP_RESULTS + 7
    for tr in range(total):
        subject.setResult(1, tr, tr / 10)
    assert subject.msgQueue.qsize() == KEEP_RESULTS
    assert subject.dequeueResult()["trId"] == 7  # the oldest ones went
    # every result still reached its files
    last = tmp_path / "run1" / "classoutput" / f"vol-1-{total - 1}.txt"
    deadline = time.monotonic() + 10
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert last.read_text() == f"{(total - 1) / 10}\n"
    assert len(list((tmp_path / "run1" / "classoutput").iterdir())) == total


def test_a_result_file_held_open_for_a_moment_is_still_replaced(tmp_path, monkeypatch):
    """On Windows a rename over a file that another program has open (MATLAB or PsychoPy
    polling feedback.json) fails with PermissionError for as long as it is open: the result
    was lost and the script's next call raised. The rename is now retried for a second.
    (Windows' refusal is simulated: os.replace fails while the reader "holds" the file.)"""
    import os

    from rtcloud.interfaces.subject import SubjectInterface
    from rtcloud.services.result_files import BackgroundWriter

    real_replace = os.replace
    held = {"refusals": 3}

    def windows_replace(src, dst):
        if os.path.basename(dst) == "feedback.json" and held["refusals"]:
            held["refusals"] -= 1
            raise PermissionError(13, "Access is denied", dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", windows_replace)
    writer = BackgroundWriter(ResultFileWriter(tmp_path / "out"))  # as the subject service
    subject = SubjectInterface(on_result=writer.submit)
    subject.setResultDict({"score": 1}, name="feedback")
    subject.setResultDict({"score": 2}, name="feedback")
    writer.flush()
    subject.setResultDict({"score": 3}, name="feedback")  # raised PermissionError here
    writer.flush()
    assert held["refusals"] == 0
    assert json.loads((tmp_path / "out" / "feedback.json").read_text())["score"] == 3
    # a refusal that lasts is still an error, reported on the call whose file it was
    held["refusals"] = 10**6
    with pytest.raises(PermissionError, match="could not write the result file"):
        subject.setResultDict({"score": 4}, name="feedback")


def test_rt_cloud_s_float_volume_numbers_name_files_and_infinite_delays_are_refused(tmp_path):
    """RT-Cloud wrote setResult(1, 3.0, ...) as vol-1-3.0.txt: we refused the name. An
    infinite onsetTimeDelayMs was accepted (and broke every presentation program)."""
    import math

    from rtcloud.interfaces.subject import SubjectInterface

    writer = ResultFileWriter(tmp_path)
    writer.write({"runId": 1, "trId": 3.0, "value": 0.5})
    assert (tmp_path / "run1" / "classoutput" / "vol-1-3.0.txt").read_text() == "0.5\n"
    for bad in ("..", "1..2", ".hidden"):
        with pytest.raises(ValidationError):
            writer.write({"runId": 1, "trId": bad, "value": 0.5})
    subject = SubjectInterface()
    for delay in (math.inf, -math.inf, math.nan, -1):
        with pytest.raises(ValidationError, match="onsetTimeDelayMs"):
            subject.setResult(1, 0, 0.5, delay)
