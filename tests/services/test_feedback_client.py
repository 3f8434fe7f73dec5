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
