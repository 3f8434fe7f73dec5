"""One interface suite, run in every configuration of the seed document.

all local (no server); server with local services; --subjectRemote; --dataRemote; both
remote; and the mixed configuration (remote data service plus a local DataInterface).
Services are real processes connected over real WebSockets; the script side is a real
ClientInterface.
"""

from __future__ import annotations

import threading

import pytest

from helpers import wait_for
from rtcloud.errors import FileWaitTimeout, ValidationError
from rtcloud.imaging.retry import readRetryDicomFromDataInterface
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series
from services.test_remote import start_service

CONFIGS = ["local", "server", "subjectRemote", "dataRemote", "both", "mixed"]


@pytest.fixture(params=CONFIGS)
def setup(request, server_factory, tmp_path):
    config = request.param
    data_remote = config in ("dataRemote", "both", "mixed")
    subject_remote = config in ("subjectRemote", "both")
    procs, server = [], None
    if config != "local":
        server = server_factory(data_remote=data_remote, subject_remote=subject_remote)
        if data_remote:
            procs.append(start_service("data-service", server, "-d", str(tmp_path), "-f", "*"))
        if subject_remote:
            procs.append(start_service("subject-service", server, "-o", str(tmp_path / "out")))
        wait_for(lambda: server.all_services_connected(), what="services")
    client = ClientInterface(yesToPrompts=True)
    yield config, server, client
    client.close()
    for proc in procs:
        proc.kill()
        proc.communicate(timeout=10)


def test_the_same_script_works_everywhere(setup, tmp_path):
    config, server, client = setup
    data, subj, web = client.dataInterface, client.subjInterface, client.webInterface
    assert client.isUsingProjectServer() is (config != "local")
    assert client.isDataRemote() is (config in ("dataRemote", "both", "mixed"))
    assert client.isSubjectRemote() is (config in ("subjectRemote", "both"))

    series, scanner = tmp_path / "series", tmp_path / "scanner"
    generate_series(series, num_volumes=4, shape=(32, 32, 8), scan=13)
    scanner.mkdir()
    replay = threading.Thread(
        target=replay_series, args=(series, scanner), kwargs={"tr": 0.05, "mode": "pieces"}
    )
    replay.start()
    stream = data.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 1000)
    for tr in range(3):
        ds = data.getImageData(stream, tr, timeout=10)
        assert ds.InstanceNumber == tr + 1 and str(ds.PatientName) == ""
    replay.join()
    data.initWatch(str(scanner), "*.dcm", 1000)
    dicom = readRetryDicomFromDataInterface(data, "001_000013_000003.dcm", timeout=5)
    # a data service anonymizes files too (watchFile); locally nothing leaves: raw bytes
    expected = "" if client.isDataRemote() else "Doe^Jane"
    assert dicom is not None and str(dicom.PatientName) == expected

    with pytest.raises(FileNotFoundError):
        data.getFile(str(tmp_path / "nothing.txt"))
    with pytest.raises(ValidationError):
        data.getImageData(stream + 100, 0, timeout=1)
    with pytest.raises(TimeoutError) as info:
        data.watchFile("late.dcm", timeout=0.2)
    assert isinstance(info.value, FileWaitTimeout)

    payload = bytes(range(256)) * 1000
    data.putFile(str(tmp_path / "out.bin"), payload, rpc_timeout=30)
    assert data.getFile(str(tmp_path / "out.bin")) == payload
    assert str(tmp_path / "out.bin") in data.listFiles(str(tmp_path / "*.bin"))
    assert abs(data.getClockSkew(__import__("time").time(), 0.0)) < 1.0

    subj.setMessage("Preparing run")
    subj.setResult(1, 0, 0.25, 0)
    subj.setResultDict({"a": 1, "b": [1.5]}, 0, name="trial_0")
    assert subj.getAllResponses() == []
    assert subj.getResponse(1, 0) == {}
    with pytest.raises(ValidationError):
        subj.setResult(1, 0, 0.5, -1)

    web.clearRunPlot(1)
    web.plotDataPoint(1, 0, 0.25)
    web.plotDataPoint(1, 1, 0.5)
    if server is not None:
        assert server.web.getPreviousDataPoints() == [[{"x": 0, "y": 0.25}, {"x": 1, "y": 0.5}]]

    if config == "mixed":
        local = DataInterface(dataRemote=False, allowedDirs=["*"], allowedFileTypes=["*"])
        assert local.getFile(str(tmp_path / "out.bin")) == payload
        local.close()
    if config in ("subjectRemote", "both"):
        txt = tmp_path / "out" / "run1" / "classoutput" / "vol-1-0.txt"
        wait_for(lambda: txt.exists() and (tmp_path / "out" / "trial_0.json").exists(), 5)
        assert txt.read_text() == "0.25\n"
