"""Issue 13 item 7: results made while the subject service is away are kept and delivered.

A real ``rtcloud subject-service`` process is killed mid-session and started again; the
script's ``setResult`` neither raises nor stalls meanwhile, the experimenter is told, and
every result reaches the output folder, in order, the missed ones marked late.
"""

from __future__ import annotations

import json
import time

import pytest

from helpers import wait_for
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.subject import KEEP_RESULTS
from services.test_remote import start_service
from services.test_subject_peers import Page


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate(timeout=10)


def results(out, run, trs):
    folder = out / f"run{run}" / "results"
    return [json.loads((folder / f"vol-{run}-{tr}.json").read_text()) for tr in trs]


def test_results_made_while_the_subject_service_is_away_arrive_late(
    server_factory, tmp_path, procs, caplog
):
    server = server_factory(subject_remote=True)  # feedback needs a peer
    out = tmp_path / "out"
    procs.append(start_service("subject-service", server, "-o", str(out)))
    wait_for(lambda: server.service_connected("subject"), what="subject service")
    client = ClientInterface()
    try:
        subj = client.subjInterface
        for tr in range(2):
            subj.setResult(1, tr, tr / 10, 0)
        files = out / "run1" / "classoutput"
        wait_for(lambda: (files / "vol-1-1.txt").exists(), what="the first results")
        procs[0].kill()  # the stimulus computer restarts
        procs[0].communicate(timeout=10)
        wait_for(lambda: not server.relay.peers(), what="the server to see it go")
        held = []
        for tr in range(2, 9):  # 7 results while it is away: none raises, none stalls
            started = time.monotonic()
            subj.setResult(1, tr, tr / 10, 0)
            held.append(time.monotonic() - started)
        assert max(held) < 0.5
        # said in the log and on the page (the connStatus message the page shows)
        assert "feedback is kept for it" in caplog.text
        status = server.conn_status()["subject"]
        assert status["waiting"] == 7 and status["connected"] is False
        procs.append(start_service("subject-service", server, "-o", str(out)))
        wait_for(
            lambda: all((files / f"vol-1-{tr}.txt").exists() for tr in range(9)),
            timeout=20,
            what="every result in the output folder",
        )
        records = results(out, 1, range(9))
        assert [r["value"] for r in records] == [tr / 10 for tr in range(9)]
        assert [r.get("late", False) for r in records] == [False] * 2 + [True] * 7
        late = [r["writtenAt"] for r in records[2:]]
        assert late == sorted(late), "kept results are delivered in order"
        subj.setResult(1, 9, 0.9, 0)  # and then live again
        wait_for(lambda: (files / "vol-1-9.txt").exists(), what="a live result")
        assert "late" not in results(out, 1, [9])[0]
        wait_for(lambda: server.conn_status()["subject"]["waiting"] == 0, what="none waiting")
    finally:
        client.close()


def test_kept_results_are_bounded_and_the_latest_are_delivered(server, caplog):
    client = ClientInterface()
    page = Page(server)
    try:
        wait_for(lambda: len(server.relay.peers()) == 1, what="the page")
        page.close()
        wait_for(lambda: not server.relay.peers(), what="the page to leave")
        total = KEEP_RESULTS + 5
        for tr in range(total):
            client.subjInterface.setResult(1, tr, 0.5, 0)
        assert server.relay.waiting() == KEEP_RESULTS
        assert "is dropped" in caplog.text
        page = Page(server)
        page.wait(lambda m: m.get("trId") == total - 1, timeout=30)
        got = [m["trId"] for m in page.received if m.get("type") == "result"]
        assert got == list(range(5, total))  # the oldest five were dropped, the rest in order
        assert all(m["late"] for m in page.received if m.get("type") == "result")
    finally:
        page.close()
        client.close()


def test_a_subject_service_killed_mid_burst_loses_no_confirmed_result(
    server_factory, tmp_path, procs
):
    """The service confirmed a result before writing its files: killed right after a burst
    of large results, the ones confirmed but not yet written were never sent again (8 of 60
    in the audit). It now confirms once the files are on disk."""
    server = server_factory(subject_remote=True)
    out = tmp_path / "out"
    procs.append(start_service("subject-service", server, "-o", str(out)))
    wait_for(lambda: server.service_connected("subject"), what="subject service")
    client = ClientInterface()
    total = 40
    try:
        values = {f"k{j}": [float(x) for x in range(2000)] for j in range(20)}  # ~0.8 MB
        for i in range(total):
            client.subjInterface.setResultDict(values, name=f"res{i:03d}")
        wait_for(lambda: server.relay.waiting() < total - 5, what="some results delivered")
        procs[0].kill()  # the stimulus computer crashes mid-burst
        procs[0].communicate(timeout=10)
        procs.append(start_service("subject-service", server, "-o", str(out)))
        wait_for(
            lambda: all((out / f"res{i:03d}.json").exists() for i in range(total)),
            timeout=60,
            what="every result in the output folder",
        )
    finally:
        client.close()


def test_two_subject_services_on_one_computer_each_get_every_result(
    server_factory, tmp_path, procs
):
    """Two subject services of one user on one computer (two output folders) were one peer
    to the server: results the other confirmed while one was away never reached it."""
    server = server_factory(subject_remote=True)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    procs.append(start_service("subject-service", server, "-o", str(out_a)))
    procs.append(start_service("subject-service", server, "-o", str(out_b)))
    wait_for(lambda: len(server.relay.peers()) == 2, what="both subject services")
    client = ClientInterface()
    try:
        subj = client.subjInterface
        subj.setResult(1, 0, 0.0, 0)
        procs[0].kill()  # A's computer restarts; B goes on
        procs[0].communicate(timeout=10)
        wait_for(lambda: len(server.relay.peers()) == 1, what="A to leave")
        for tr in range(1, 6):
            subj.setResult(1, tr, tr / 10, 0)
        files_b = out_b / "run1" / "classoutput"
        wait_for(lambda: (files_b / "vol-1-5.txt").exists(), what="B's results")
        procs.append(start_service("subject-service", server, "-o", str(out_a)))
        wait_for(
            lambda: all(
                (out_a / "run1" / "classoutput" / f"vol-1-{tr}.txt").exists() for tr in range(6)
            ),
            timeout=20,
            what="every result in A's folder after its restart",
        )
        assert all(r.get("late") for r in results(out_a, 1, range(1, 6)))
    finally:
        client.close()
