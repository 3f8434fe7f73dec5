"""The Python feedback client: results at their onset time, messages, responses back."""

from __future__ import annotations

import time

import pytest

from rtcloud.errors import AuthenticationError
from rtcloud.feedback import FeedbackClient
from rtcloud.interfaces.client import ClientInterface


def address(server):
    return server.url.split("//")[1].rstrip("/")


def test_results_at_onset_and_responses_back(server_factory):
    server = server_factory(subject_remote=True)
    feedback = FeedbackClient(address(server), "test", "test").start()
    client = ClientInterface()
    try:
        deadline = time.monotonic() + 10
        while not server.service_connected("subject") and time.monotonic() < deadline:
            time.sleep(0.02)
        subj = client.subjInterface
        subj.setMessage("Get ready")
        sent = time.time()
        subj.setResult(1, 0, 0.8, 300)
        subj.setResult(1, 1, 0.2, 0)
        result = feedback.wait_for_result(1, 1, timeout=5)  # out of order: volume 1 first
        assert result is not None and result["value"] == 0.2
        result = feedback.wait_for_result(1, 0, timeout=5)
        assert result is not None and result["value"] == 0.8
        delay = result["shownAt"] - result["timestamp"]
        assert 0.29 <= delay < 0.35, f"shown {delay * 1000:.0f} ms after arrival, not 300 ms"
        assert result["shownAt"] - sent < 0.5
        assert feedback.message() == "Get ready"
        feedback.send_response(1, 0, {"key": "space", "rt": 0.42})
        assert subj.getResponse(1, 0)["key"] == "space"
        responses = subj.getAllResponses()
        assert [r["rt"] for r in responses] == [0.42]
        assert subj.getAllResponses() == []
        assert feedback.next_result(timeout=0.1) is None
    finally:
        client.close()
        feedback.close()


def test_wrong_password_is_reported(server_factory):
    server = server_factory(subject_remote=True)
    with pytest.raises(AuthenticationError):
        FeedbackClient(address(server), "test", "nope").start(timeout=10)


def test_the_psychopy_example_credits_each_key_to_the_feedback_on_screen(server_factory):
    """examples/psychopy_feedback.py, unchanged, with a PsychoPy stand-in whose participant
    presses a key 0.3 s after each display. The example read keys once, right after the next
    flip: each press went to the next volume with a negative rt, and the last was lost."""
    import os
    import subprocess
    import sys

    from helpers import REPO, wait_for

    server = server_factory(subject_remote=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "tests" / "stand_ins"), str(REPO / "src"), env.get("PYTHONPATH", "")]
    )
    example = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "psychopy_feedback.py"), address(server)]
        + ["test", "--run", "1", "--volumes", "5", "--tr", "0.6"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    client = ClientInterface()
    try:
        example.stdin.write("test\n")
        example.stdin.flush()
        wait_for(lambda: server.relay.peers(), what="the example to connect")
        subj = client.subjInterface
        for tr in range(5):
            subj.setResult(1, tr, tr / 10, 0)
            time.sleep(0.6)
        output, _ = example.communicate(timeout=30)
        assert example.returncode == 0, output
        for tr in range(5):
            response = subj.getResponse(1, tr)
            assert response.get("key") == "f", (tr, response, output)
            assert 0.25 <= response["rt"] <= 0.45, (tr, response)
    finally:
        if example.poll() is None:
            example.kill()
        client.close()


def test_a_dropped_link_loses_no_key_press_and_shows_no_stale_result(server_factory):
    """While the link was down send_response raised (a key press lost, and the example
    stopped); results kept for the client while it was away came back and were handed out
    at once as if live."""
    from helpers import wait_for
    from rtcloud.simulate.network import NetworkProxy

    server = server_factory(subject_remote=True)
    host, port = address(server).rsplit(":", 1)
    with NetworkProxy((host, int(port))).start() as proxy:
        feedback = FeedbackClient(proxy.address, "test", "test").start()
        client = ClientInterface()
        try:
            subj = client.subjInterface
            subj.setResult(1, 0, 0.5, 0)
            assert feedback.wait_for_result(1, 0, timeout=5)["value"] == 0.5
            proxy.refuse()
            proxy.cut()
            wait_for(lambda: not server.relay.peers(), what="the client to be away")
            feedback.send_response(1, 0, {"key": "f", "rt": 0.3})  # kept, no error
            subj.setResult(1, 1, 0.7, 0)  # kept by the server for the client
            proxy.refuse(False)
            wait_for(lambda: server.relay.peers(), what="the client back")
            assert feedback.flush_responses() == 0
            response = subj.getResponse(1, 0)
            assert (response["key"], response["rt"]) == ("f", 0.3)
            assert feedback.wait_for_result(1, 1, timeout=1) is None  # late: not shown
            subj.setResult(1, 2, 0.9, 0)
            assert feedback.next_result(timeout=5)["trId"] == 2  # live again
        finally:
            client.close()
            feedback.close()
