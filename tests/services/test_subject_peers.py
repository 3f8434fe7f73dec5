"""Several presentation peers at once: subject services, feedback clients, feedback pages.

A real server, a real ``rtcloud subject-service`` process, a real FeedbackClient, and feedback
pages spoken to over real WebSockets with the page's JSON messages (the browser itself is
driven in tests/web).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import numpy as np
import pytest
from websockets.sync.client import connect

from helpers import wait_for
from rtcloud.errors import FeedbackDeliveryError, ServiceUnavailableError
from rtcloud.feedback import FeedbackClient
from rtcloud.interfaces.client import ClientInterface
from rtcloud.server.feedback_pages import MAX_PAGE_MESSAGE
from rtcloud.utils import json_plain
from services.test_remote import start_service


def address(server):
    return server.url.split("//")[1].rstrip("/")


def session_cookie(server, user="test", password="test"):
    conn = http.client.HTTPConnection(address(server), timeout=10)
    body = urllib.parse.urlencode({"username": user, "password": password, "next": "/"})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.getheader("set-cookie").split(";", 1)[0]


class Page:
    """A feedback page's socket, as /static/rtcloud-feedback.js uses it."""

    def __init__(self, server, auto_ack=True, instance=None):
        query = f"?instance={instance}" if instance else ""
        self._context = connect(
            f"ws://{address(server)}/ws/feedback{query}",
            additional_headers={"Cookie": session_cookie(server)},
        )
        self.ws = self._context.__enter__()
        self.hello = json.loads(self.ws.recv(timeout=5))
        assert self.hello["type"] == "hello"
        self.received: list[dict] = []
        self.auto_ack = auto_ack
        self._new = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for text in self.ws:
                message = json.loads(text)
                with self._new:  # recorded before the ack: the call returns on the ack
                    self.received.append(message)
                    self._new.notify_all()
                if self.auto_ack and "id" in message:
                    self.ws.send(json.dumps({"type": "ack", "id": message["id"]}))
        except Exception:  # closed: the test is over
            return

    def wait(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                found = [m for m in self.received if predicate(m)]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the page did not receive it; got {self.received}")
                self._new.wait(remaining)

    def send(self, message):
        self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    def close(self):
        self._context.__exit__(None, None, None)


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate(timeout=10)


def test_every_peer_gets_every_result_and_responses_come_back(server_factory, tmp_path, procs):
    server = server_factory(subject_remote=True)
    out = tmp_path / "out"
    procs.append(start_service("subject-service", server, "-o", str(out)))
    feedback = FeedbackClient(address(server), "test", "test").start()
    page = Page(server)
    wait_for(lambda: len(server.relay.peers()) == 3, what="three feedback peers")
    client = ClientInterface()
    try:
        subj = client.subjInterface
        assert client.isSubjectRemote() and subj.isRunningRemote()
        subj.setMessage("Get ready")
        subj.setResult(1, 0, 0.25, 0)
        subj.setResultDict({"roi": [1.5, 2.5]}, 0, "summary")
        # every peer gets it: files (written just after the ack), the Python client, the page
        txt, summary = out / "run1" / "classoutput" / "vol-1-0.txt", out / "summary.json"
        wait_for(lambda: txt.exists() and summary.exists(), timeout=5, what="result files")
        assert txt.read_text().strip() == "0.25"
        assert json.loads(summary.read_text())["roi"] == [1.5, 2.5]
        assert feedback.wait_for_result(1, 0, timeout=1)["value"] == 0.25
        assert feedback.message() == "Get ready"
        kinds = [m["type"] for m in page.received]
        assert kinds == ["message", "result", "resultDict"]
        assert page.received[1] | {"id": 0} == {
            "type": "result",
            "id": 0,
            "runId": 1,
            "trId": 0,
            "value": 0.25,
            "onsetTimeDelayMs": 0,
        }
        # responses from the page and from the Python client both reach the script
        page.send({"type": "response", "runId": 1, "trId": 0, "response": {"key": "f", "rt": 412}})
        feedback.send_response(1, 1, {"key": "j", "rt": 0.5})
        wait_for(lambda: subj.getResponse(1, 0) != {}, what="the page's response")
        assert subj.getResponse(1, 0)["key"] == "f" and subj.getResponse(1, 0)["rt"] == 412
        assert subj.getResponse(1, 1)["key"] == "j"
        assert sorted(r["key"] for r in subj.getAllResponses()) == ["f", "j"]
        assert subj.getAllResponses() == []
    finally:
        client.close()
        page.close()
        feedback.close()


def test_required_subject_side_fails_at_once_without_peers(server_factory):
    server = server_factory(subject_remote=True)
    client = ClientInterface()
    try:
        start = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as info:
            client.subjInterface.setResult(1, 0, 0.5, 0)
        assert time.monotonic() - start < 1.0
        assert "subject-service" in str(info.value) and "/feedback" in str(info.value)
        assert client.subjInterface.getAllResponses() == []  # kept in the server: answers
        assert not server.service_connected("subject")
    finally:
        client.close()


def test_optional_peers_and_the_current_message_for_late_pages(server):
    client = ClientInterface()
    try:
        subj = client.subjInterface
        assert not client.isSubjectRemote()
        subj.setMessage("Relax")
        subj.setResult(1, 0, 0.5, 0)  # no peer: kept in the server
        assert server.subject.dequeueResult()["value"] == 0.5
        page = Page(server)
        try:
            assert page.hello["message"] == "Relax"  # a late page shows the message at once
            wait_for(lambda: len(server.relay.peers()) == 1, what="the page")
            subj.setResult(1, 1, float("nan"), 250)
            got = page.wait(lambda m: m.get("trId") == 1)
            assert got["value"] is None and got["onsetTimeDelayMs"] == 250  # NaN -> null
        finally:
            page.close()
        wait_for(lambda: not server.relay.peers(), what="the page to leave")
        subj.setResult(1, 2, 0.5, 0)  # optional: still fine without peers
    finally:
        client.close()


def test_a_silent_page_holds_nothing_and_a_failing_page_reports_on_the_next_call(server, caplog):
    client = ClientInterface()
    silent = Page(server, auto_ack=False)
    try:
        wait_for(lambda: len(server.relay.peers()) == 1, what="the page")
        start = time.monotonic()
        client.subjInterface.setResult(1, 0, 0.5, 0)  # the page never confirms it
        assert time.monotonic() - start < 0.5, "setResult must not wait for the page"
        message = silent.wait(lambda m: m.get("trId") == 0)
        # the experimenter hears of the silent page (log and page) after SLOW_AFTER
        wait_for(
            lambda: "has not confirmed setResult(run 1, TR 0)" in caplog.text,
            timeout=10,
            what="the slow page reported",
        )
        silent.send({"type": "error", "id": message["id"], "error": "no"})
        wait_for(lambda: "reported: no" in caplog.text, what="the failure logged")
        with pytest.raises(FeedbackDeliveryError, match=r"setResult\(run 1, TR 0\).*reported: no"):
            client.subjInterface.setResult(1, 1, 0.5, 0)  # kept and sent all the same
        assert silent.wait(lambda m: m.get("trId") == 1)["value"] == 0.5
        client.subjInterface.setResult(1, 2, 0.5, 0)  # reported once
    finally:
        silent.close()
        client.close()


def test_a_page_that_leaves_mid_delivery_gets_the_result_late_when_back(server):
    client = ClientInterface()
    page = Page(server, auto_ack=False)
    try:
        wait_for(lambda: len(server.relay.peers()) == 1, what="the page")
        start = time.monotonic()
        client.subjInterface.setResult(1, 0, 0.5, 0)
        assert time.monotonic() - start < 0.5
        assert "late" not in page.wait(lambda m: m.get("trId") == 0)
        page.close()  # gone before confirming it
        wait_for(lambda: not server.relay.peers(), what="the page to leave")
        client.subjInterface.setResult(1, 1, 0.75, 0)  # made while it is away
        assert server.relay.waiting() == 2
        page = Page(server)
        first = page.wait(lambda m: m.get("trId") == 0)
        second = page.wait(lambda m: m.get("trId") == 1)
        assert first["late"] is True and second["late"] is True and second["value"] == 0.75
        assert page.received.index(first) < page.received.index(second)  # in order
        client.subjInterface.setResult(1, 2, 1.0, 0)
        assert "late" not in page.wait(lambda m: m.get("trId") == 2)
        wait_for(lambda: server.relay.waiting() == 0, what="nothing kept any more")
    finally:
        page.close()
        client.close()


def test_two_pages_of_one_user_on_one_computer_are_two_peers(server):
    """Peers were told apart by kind, user and host: with two feedback tabs on one computer
    (or two subject services behind one address), the one that was away got nothing of what
    the other had confirmed meanwhile (35 of 60 results lost in the audit)."""
    client = ClientInterface()
    a, b = Page(server, instance="tab-a"), Page(server, instance="tab-b")
    try:
        wait_for(lambda: len(server.relay.peers()) == 2, what="both pages")
        client.subjInterface.setResult(1, 0, 0.5, 0)
        a.wait(lambda m: m.get("trId") == 0)
        a.close()
        wait_for(lambda: len(server.relay.peers()) == 1, what="page A to leave")
        for tr in (1, 2):  # page B confirms these
            client.subjInterface.setResult(1, tr, tr / 4, 0)
        b.wait(lambda m: m.get("trId") == 2)
        a = Page(server, instance="tab-a")  # the same tab, back
        missed = [a.wait(lambda m, tr=tr: m.get("trId") == tr) for tr in (1, 2)]
        assert all(m["late"] for m in missed)
    finally:
        a.close()
        b.close()
        client.close()


def test_bad_page_messages_are_refused_and_the_link_stays_up(server):
    client = ClientInterface()
    page = Page(server)
    try:
        bad = [
            "not json",
            json.dumps([1, 2]),
            json.dumps({"type": "launch"}),
            json.dumps({"type": "response", "runId": [1], "trId": 0, "response": {}}),
            json.dumps({"type": "response", "runId": 1, "trId": 0, "response": "x"}),
            "x" * (MAX_PAGE_MESSAGE + 1),
            b"\x00binary",
        ]
        for message in bad:
            page.send(message)
        wait_for(
            lambda: sum(m["type"] == "refused" for m in page.received) == len(bad),
            what="every bad message refused",
        )
        page.send({"type": "response", "runId": 2, "trId": 5, "response": {"key": "a"}})
        wait_for(lambda: client.subjInterface.getResponse(2, 5) != {}, what="a good response")
        assert client.subjInterface.getAllResponses()[0]["key"] == "a"
    finally:
        page.close()
        client.close()


def test_values_for_pages_become_plain_json():
    assert json_plain({"a": np.arange(3), "b": (np.float32(1.5), float("inf")), "c": object}) == {
        "a": [0, 1, 2],
        "b": [1.5, None],
        "c": str(object),
    }


def test_feedback_socket_refuses_without_login(server):
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    with pytest.raises((ConnectionClosed, InvalidStatus)):
        with connect(f"ws://{address(server)}/ws/feedback") as ws:
            ws.recv(timeout=5)
