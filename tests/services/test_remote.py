"""Remote data and subject services as real processes, connected over real WebSockets."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import start_service, wait_for
from rtcloud.errors import ServiceUnavailableError, ValidationError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.server.data_streams import RECONNECT_GRACE
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "series"
    generate_series(folder, num_volumes=12, shape=(32, 32, 8), scan=13)
    return folder


@pytest.fixture
def remote(server_factory, tmp_path):
    server = server_factory(data_remote=True, subject_remote=True)
    procs = []

    def start(kind, *extra, **kw):
        proc = start_service(kind, server, *extra, **kw)
        procs.append(proc)
        return proc

    yield server, start
    for proc in procs:
        proc.kill()
        proc.communicate(timeout=10)  # also closes the pipes


def test_both_hops_with_typed_errors_and_result_files(remote, series, tmp_path):
    server, start = remote
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    out = tmp_path / "subject-out"
    start("data-service", "-d", str(tmp_path), "-f", ".dcm,.txt")
    start("subject-service", "-o", str(out))
    wait_for(lambda: server.all_services_connected())
    client = ClientInterface()
    try:
        assert client.isDataRemote() and client.isSubjectRemote()
        data = client.dataInterface
        assert data.isRunningRemote()
        replay = threading.Thread(
            target=replay_series, args=(series, scanner), kwargs={"tr": 0.05}
        )
        replay.start()
        stream = data.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 1000)
        for tr in range(4):
            ds = data.getImageData(stream, tr, timeout=10)
            assert ds.InstanceNumber == tr + 1 and str(ds.PatientName) == ""  # anonymized there
        replay.join()
        # escapes sent over the wire are refused by the data service, with their type
        with pytest.raises(ValidationError, match="not within the allowed directories"):
            data.getFile(str(tmp_path / ".." / "escape.txt"))
        with pytest.raises(ValidationError, match="File type"):
            data.getFile(str(series / "x.pem"))
        with pytest.raises(FileNotFoundError):
            data.getFile(str(tmp_path / "missing.txt"))
        data.putFile(str(tmp_path / "result.txt"), "42")
        assert (tmp_path / "result.txt").read_text() == "42"
        client.subjInterface.setResult(1, 3, 0.75, 100)
        wait_for(
            lambda: (out / "run1" / "classoutput" / "vol-1-3.txt").exists(), what="result file"
        )
        assert (out / "run1" / "classoutput" / "vol-1-3.txt").read_text() == "0.75\n"
    finally:
        client.close()


def test_calls_fail_at_once_without_a_service(server_factory):
    server = server_factory(data_remote=True)
    client = ClientInterface()
    try:
        start = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="data-service"):
            client.dataInterface.getFile("/tmp/x.txt")
        assert time.monotonic() - start < 1
        assert not server.channels["data"].connected
    finally:
        client.close()


def test_wrong_password_stops_the_service_with_a_message(remote):
    server, start = remote
    proc = start("data-service", password="wrong")
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "wrong user name or password" in output


def test_kill_during_get_image_data_then_restart_continues(remote, series, tmp_path):
    server, start = remote
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    args = ("-d", str(tmp_path), "-f", ".dcm")
    service = start("data-service", *args)
    wait_for(lambda: server.channels["data"].connected, what="data service")
    client = ClientInterface()
    try:
        data = client.dataInterface
        stream = data.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 1000)
        replay_series(list(sorted(series.glob("*.dcm")))[:3], scanner, tr=0)
        assert data.getImageData(stream, timeout=5).InstanceNumber == 1
        assert data.getImageData(stream, timeout=5).InstanceNumber == 2
        failed = {}

        def wait_for_missing_volume():
            start_t = time.monotonic()
            try:
                data.getImageData(stream, 7, timeout=30)
            except Exception as exc:  # what the script sees when the service dies
                failed["exc"] = exc
                failed["after"] = time.monotonic()
            failed["waited"] = time.monotonic() - start_t

        waiter = threading.Thread(target=wait_for_missing_volume)
        waiter.start()
        time.sleep(0.5)
        killed = time.monotonic()
        service.kill()
        waiter.join(10)
        # a dropped service is waited for (RECONNECT_GRACE) in case it comes back; one
        # that does not is an error soon after that, naming it
        assert isinstance(failed.get("exc"), ServiceUnavailableError)
        assert "waited" in str(failed["exc"])
        assert failed["after"] - killed < RECONNECT_GRACE + 1.5
        start("data-service", *args)
        wait_for(lambda: server.channels["data"].connected, what="restarted data service")
        replay_series(list(sorted(series.glob("*.dcm")))[3:6], scanner, tr=0)
        # the stream goes on where it was: the next volume is 3, with the same stream id
        assert data.getImageData(stream, timeout=5).InstanceNumber == 3
        assert data.getImageData(stream, 3, timeout=5).InstanceNumber == 4
    finally:
        client.close()


def test_quality_records_get_the_volumes_hops_from_a_remote_data_service(remote, series, tmp_path):
    server, start = remote
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    start("data-service", "-d", str(tmp_path), "-f", ".dcm")
    start("subject-service", "-o", str(tmp_path / "out"))
    wait_for(lambda: server.all_services_connected())
    sent = []
    server.web.set_sink(sent.append)
    client = ClientInterface()
    try:
        stream = client.dataInterface.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 0)
        replay_series(series, scanner, tr=0.01)  # every file complete before it is asked for
        time.sleep(0.1)
        client.dataInterface.getImageData(stream, 2, timeout=10)
        received = time.time()
        server.timeline.flush(10)
        client.webInterface.sendQuality(1, 2, {"timeline": {"received": received}})
        assert client.rpcConn.flush_posted(10)  # posted: the script did not wait for it
        record = [m for m in sent if m.get("cmd") == "quality"][-1]["record"]
        hops = record["hops"]
        assert hops["waiting"] >= 90  # the file waited ~0.1 s for the script's request
        assert 0 <= hops["scanner"] < 2000 and 0 <= hops["toServer"] < 2000
        assert 0 <= hops["toScript"] < 2000
        # the server's stream id is mapped to the data service's own one
        times = client.dataInterface.getVolumeTimes(stream, 2)
        assert times["complete"] <= times["asked"] <= times["sent"]
    finally:
        client.close()


def test_rt_cloud_s_service_command_line_works(server_factory, tmp_path):
    """RT-Cloud started its services with -u USER -p PASSWORD -i 5: argparse refused -p."""
    import os
    import subprocess
    import sys

    server = server_factory(subject_remote=True)
    host = server.url.split("//")[1].rstrip("/")
    env = {k: v for k, v in os.environ.items() if k != "RTCLOUD_PASSWORD"}
    cmd = [sys.executable, "-m", "rtcloud", "subject-service", "-s", host]
    cmd += ["-u", "test", "-p", "test", "-i", "5", "-o", str(tmp_path / "out")]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: server.service_connected("subject"), what="the subject service")
    finally:
        proc.kill()
        output, _ = proc.communicate(timeout=10)
    assert "process list" in output  # told that -p is visible to others


def test_a_second_data_service_takes_over_and_the_first_stops(remote, tmp_path):
    """Two data services for one server (one forgotten on another computer) pushed each
    other out in turn, about five times a second, and every call on them failed."""
    from rtcloud.services.runner import EXIT_REPLACED

    server, start = remote
    (tmp_path / "note.txt").write_text("hello")
    first = start("data-service", "-d", str(tmp_path), "-f", ".txt")
    wait_for(lambda: server.channels["data"].connected, what="the first data service")
    second = start("data-service", "-d", str(tmp_path), "-f", ".txt")
    output, _ = first.communicate(timeout=30)  # the first stops by itself
    assert first.returncode == EXIT_REPLACED
    assert "another data service" in output and "took this one's place" in output
    wait_for(lambda: server.channels["data"].connected, what="the second data service")
    client = ClientInterface()
    try:
        generation = server.channels["data"].generation
        for _ in range(5):
            assert client.dataInterface.getFile(str(tmp_path / "note.txt")) == b"hello"
        assert server.channels["data"].generation == generation  # no more push and shove
        assert second.poll() is None
    finally:
        client.close()


def test_a_bids_stream_goes_on_after_the_data_service_restarts(remote, series, tmp_path):
    """Data streams survived a data-service restart but BIDS streams did not: the next
    getIncremental raised NoSuchStreamError (and a stale id could name a new stream)."""
    import numpy as np

    server, start = remote
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    for path in sorted(series.glob("*.dcm"))[:4]:
        (scanner / path.name).write_bytes(path.read_bytes())
    args = ("-d", str(tmp_path), "-f", ".dcm")
    service = start("data-service", *args)
    wait_for(lambda: server.channels["data"].connected, what="data service")
    client = ClientInterface()
    try:
        bids = client.bidsInterface
        stream = bids.initDicomBidsStream(
            str(scanner), "001_000013_{TR:06d}.dcm", 0, subject="01", task="t"
        )
        first = bids.getIncremental(stream, timeout=5)
        service.kill()
        service.communicate(timeout=10)
        start("data-service", *args)
        wait_for(lambda: server.channels["data"].connected, what="the restarted service")
        after = bids.getIncremental(stream, timeout=10)  # the next one: volume 1
        again = bids.getIncremental(stream, 1, timeout=10)
        np.testing.assert_array_equal(after.getImageData(), again.getImageData())
        assert not np.array_equal(after.getImageData(), first.getImageData())
        assert bids.getIncremental(stream, timeout=10) is not None  # volume 2, and on
    finally:
        client.close()
