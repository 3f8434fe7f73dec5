"""RT-Cloud's service classes for programs of their own (a PsychoPy script holding the
participant's SubjectInterface): ``SubjectService``, ``WsRemoteService`` and
``parseConnectionArgs`` from ``rtCommon``, against a real project server."""

from __future__ import annotations

import pytest

from helpers import wait_for
from rtcloud.errors import ConfigError
from rtcloud.interfaces.client import ClientInterface
from rtCommon.subjectService import SubjectService
from rtCommon.wsRemoteService import WsRemoteService, parseConnectionArgs


def test_a_psychopy_style_script_gets_the_results(server_factory):
    """``from rtCommon.subjectService import SubjectService`` did not exist: RT-Cloud's
    PsychoPy example stopped at its first line."""
    server = server_factory(subject_remote=True)
    host = server.url.split("//")[1].rstrip("/")
    args = parseConnectionArgs(["-s", host, "--test", "--window", "full"])  # its own option too
    service = SubjectService(args)
    service.runDetached()
    try:
        wait_for(lambda: service.wsRemoteService.started, what="the subject service")
        wait_for(lambda: server.service_connected("subject"), what="the server to see it")
        client = ClientInterface()
        try:
            client.subjInterface.setResult(1, 0, 2.5, 0)
            client.subjInterface.setResult(1, 1, -1.0, 250)
        finally:
            client.close()
        first = service.subjectInterface.dequeueResult(block=True, timeout=10)
        second = service.subjectInterface.dequeueResult(block=True, timeout=10)
        assert (first["runId"], first["trId"], first["value"]) == (1, 0, 2.5)
        assert (second["trId"], second["value"], second["onsetTimeDelayMs"]) == (1, -1.0, 250)
    finally:
        service.stop()


def test_connection_options_and_their_errors():
    args = parseConnectionArgs(["-s", "scanner-pc:8888", "-u", "alice", "-p", "secret"])
    assert (args.server, args.username, args.password) == ("scanner-pc:8888", "alice", "secret")
    # another computer without TLS: the password would cross the network in clear
    with pytest.raises(ConfigError, match="--tls"):
        WsRemoteService(args, "wsSubject").runDetached()
    with pytest.raises(ValueError, match="unknown channel"):
        WsRemoteService(args, "wsNothing")


def test_local_feedback_takes_numpy_delays_as_the_server_does():
    """In a script run without a server, ``setResult(..., onsetTimeDelayMs=np.int64(500))``
    (a delay computed with numpy) raised ValidationError; through a server it worked."""
    import numpy as np

    from rtcloud.errors import ValidationError
    from rtcloud.interfaces.subject import SubjectInterface

    subject = SubjectInterface()
    for delay in (np.int64(500), np.int32(250), np.float32(12.5), np.float64(0), 3, 3.1):
        subject.setResult(1, 0, 1.0, delay)
        assert subject.dequeueResult()["onsetTimeDelayMs"] == float(delay)
    subject.setResultDict({"x": 1}, np.int64(40))
    assert subject.dequeueResult()["onsetTimeDelayMs"] == 40.0
    for bad in (-1, np.float64("nan"), np.bool_(True), True, "5"):
        with pytest.raises(ValidationError):
            subject.setResult(1, 0, 1.0, bad)
