"""The participant's side in a real browser: /feedback, the jsPsych plugin, --jspsych.

A real server, a real experiment script side (``ClientInterface()``, which finds the server by
itself) and Chromium driven by Playwright. Onset times are measured in the page (its
``Date.now()`` and ``performance.now()`` records) and compared with the script's clock
(``time.time()``; the same machine, so the same clock).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import wait_for
from rtcloud.cli import EXIT_USAGE, main
from rtcloud.errors import InvocationError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.server.config import JSPSYCH_CDN_VERSION, find_jspsych

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "src" / "rtcloud" / "web"
CACHE = REPO / ".cache"
#: Allowed error of a measured onset (ms): timers in a busy headless browser on a CI machine.
TOLERANCE_MS = 40

pytestmark = pytest.mark.browser


@pytest.fixture
def console_errors(page):
    """Console errors and uncaught exceptions of the page (asserted empty by the tests)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


@pytest.fixture
def script():
    """The experiment script's side: a real ClientInterface to the running server."""
    clients = []

    def connect():
        client = ClientInterface()
        clients.append(client)
        assert client.isUsingProjectServer()
        return client.subjInterface

    yield connect
    for client in clients:
        client.close()


def log_in_at(page, url, user="test", password="test"):
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(url)


def open_page(page, server, path, peers=1):
    """Open a page of the server: redirected to the login, and back after logging in."""
    url = server.url.rstrip("/") + path
    page.goto(url)
    assert "/login?next=" in page.url
    log_in_at(page, url)
    page.wait_for_selector(".rtf-status[data-state='open']")
    wait_for(lambda: len(server.relay.peers()) == peers, what="the page as a feedback peer")


def shown(page, n):
    """The page's records of the first ``n`` results shown (waits for them)."""
    page.wait_for_function("n => RtcloudFeedback.shared().shown.length >= n", arg=n)
    return page.evaluate("n => RtcloudFeedback.shared().shown.slice(0, n)", n)


def shown_for(page, index, ms):
    """Wait until result ``index`` has been on screen ``ms`` milliseconds (the page's clock)."""
    page.wait_for_function(
        """([i, ms]) => {
            const r = RtcloudFeedback.shared().shown[i];
            return r && performance.now() - r.displayPerf >= ms;
        }""",
        arg=[index, ms],
    )


def after_the_page(page, subj):
    """Wait until the server has everything the page sent so far.

    The page sends a marker response (run 999) after whatever it sent before, on the same
    socket; once the script sees it, the earlier ones have arrived too. Returns the
    responses that came before it (getAllResponses, the marker left out).
    """
    page.evaluate("RtcloudFeedback.shared().sendResponse(999, 0, {key: 'marker'})")
    wait_for(lambda: subj.getResponse(999, 0) != {}, what="the page's marker response")
    return [r for r in subj.getAllResponses() if r["runId"] != 999]


FIGURE = """() => {
  const stage = document.querySelector('.rtf-stage');
  const track = stage.querySelector('.rtf-track');
  const fill = stage.querySelector('.rtf-fill').getBoundingClientRect();
  return {
    state: stage.dataset.state,
    height: fill.height / track.clientHeight,
    width: fill.width / track.clientWidth,
    label: stage.querySelector('.rtf-value').textContent,
    low: stage.classList.contains('rtf-clamped-low'),
    high: stage.classList.contains('rtf-clamped-high'),
  };
}"""


# ------------------------------------------------------------------ /feedback


def test_message_and_results_at_their_onsets(page, server, script, shots, console_errors):
    open_page(page, server, "/feedback")
    subj = script()
    subj.setMessage("Get ready: the bar shows how focused you are")
    page.wait_for_selector(".rtf-message >> text=Get ready")
    assert page.get_attribute(".rtf-stage", "data-state") == "empty"
    page.screenshot(path=str(shots / "feedback-message.png"))

    measured = []
    for tr, (value, delay) in enumerate([(0.25, 300), (0.75, 0), (0.5, 300)]):
        sent = time.time()
        subj.setResult(1, tr, value, onsetTimeDelayMs=delay)
        returned = time.time()
        record = shown(page, tr + 1)[tr]
        assert (record["runId"], record["trId"], record["value"]) == (1, tr, value)
        send_to_arrival = record["arrivalTime"] - sent * 1000  # same machine: same clock
        shown_after = record["displayTime"] - record["arrivalTime"]
        print(
            f"onsetTimeDelayMs={delay}: script->page {send_to_arrival:.1f} ms, setResult returned "
            f"after {(returned - sent) * 1000:.1f} ms, display-arrival {record['delayMs']:.1f} ms "
            f"(Date.now: {shown_after} ms), late {record['lateMs']:.1f} ms"
        )
        measured.append(record["delayMs"])
        # the page acknowledges on arrival: the script does not wait for the onset
        assert (returned - sent) * 1000 < 250
        assert -2 <= send_to_arrival < 150
        assert abs(record["delayMs"] - delay) <= TOLERANCE_MS
        assert abs(shown_after - delay) <= TOLERANCE_MS + 2  # whole ms
        assert record["lateMs"] >= 0  # never before its onset
        assert page.get_attribute(".rtf-stage", "data-state") == "value"
        if tr == 1:
            page.screenshot(path=str(shots / "feedback-result.png"))
        shown_for(page, tr, 150)  # let it stand (a result is shown for at least minShowMs)
    # the automatic range: 0.25 first (the middle), then 0.75 (the top), 0.5 in between
    assert page.evaluate(FIGURE)["height"] == pytest.approx(0.5, abs=0.01)
    assert page.text_content(".rtf-message") == "Get ready: the bar shows how focused you are"
    frame = page.evaluate("RtcloudFeedback.shared().shown.map(r => r.framePerf - r.displayPerf)")
    assert all(0 <= ms < 100 for ms in frame)  # drawn in the next frame
    print(f"measured onset delays (asked 300, 0, 300 ms): {[round(m, 1) for m in measured]}")
    assert console_errors == []


def test_a_message_right_after_the_last_result_lets_it_be_seen(page, server, script):
    """Scripts (the sample too) send setMessage("End run") right after their last result:
    the page showed that result for about 4 ms before the message replaced it."""
    open_page(page, server, "/feedback")
    page.evaluate(
        """() => { window.messagesAt = [];
                   RtcloudFeedback.shared().on('message', t => window.messagesAt.push(
                       [t, performance.now()])); }"""
    )
    subj = script()
    subj.setResult(1, 0, 0.5, onsetTimeDelayMs=0)
    subj.setMessage("End run")
    (record,) = shown(page, 1)
    page.wait_for_selector(".rtf-message >> text=End run")
    ((text, at),) = page.evaluate("window.messagesAt")
    assert text == "End run"
    hold = page.evaluate("RtcloudFeedback.shared().messageHoldMs")
    assert at - record["displayPerf"] >= hold - TOLERANCE_MS  # the result stood its time


def test_a_result_arriving_during_another_ones_delay_waits_its_turn(page, server, script):
    open_page(page, server, "/feedback")
    subj = script()
    subj.setResult(1, 0, 1.0, onsetTimeDelayMs=300)
    subj.setResult(1, 1, 2.0, onsetTimeDelayMs=0)  # due at once, but the first comes first
    first, second = shown(page, 2)
    assert [first["trId"], second["trId"]] == [0, 1]
    assert abs(first["delayMs"] - 300) <= TOLERANCE_MS
    min_show = page.evaluate("RtcloudFeedback.shared().minShowMs")
    assert min_show == 100
    # the first stood for at least minShowMs before the second replaced it
    assert second["displayPerf"] - first["displayPerf"] >= min_show - 1
    assert second["lateMs"] >= 300 - TOLERANCE_MS and second["queuedBehind"] == 1
    print(
        f"queued: first shown {first['delayMs']:.1f} ms after arrival, the second "
        f"{second['displayPerf'] - first['displayPerf']:.1f} ms after the first"
    )


def test_results_kept_while_the_page_was_away_are_not_shown(page, server, script):
    open_page(page, server, "/feedback")
    subj = script()
    subj.setResult(1, 0, 0.5, 0)
    shown(page, 1)
    page.goto("about:blank")  # the tab reloads or the link drops: the page is away
    wait_for(lambda: not server.relay.peers(), what="the page to leave")
    subj.setResult(1, 1, 0.25, 0)  # kept for the page
    page.goto(server.url + "feedback")  # still logged in: straight back
    # a function, not an expression: Playwright polls an expression with eval, which the
    # page's Content-Security-Policy refuses when the first check is false
    page.wait_for_function("() => RtcloudFeedback.shared().late.length >= 1")
    late = page.evaluate("RtcloudFeedback.shared().late")
    assert [(r["trId"], r["value"], r["late"]) for r in late] == [(1, 0.25, True)]
    assert page.evaluate("RtcloudFeedback.shared().shown.length") == 0  # never shown
    assert page.get_attribute(".rtf-stage", "data-state") == "empty"
    subj.setResult(1, 2, 0.75, 0)  # live again: shown
    assert shown(page, 1)[0]["trId"] == 2
    assert server.relay.waiting() == 0


def test_key_presses_come_back_to_the_script(page, server, script, console_errors):
    open_page(page, server, "/feedback?keys=f,j")
    subj = script()
    page.keyboard.press("f")  # no result shown yet: not a response
    subj.setResult(2, 7, 0.5, 0)
    (record,) = shown(page, 1)
    shown_for(page, 0, 250)  # the participant takes 250 ms or more
    pressed = time.time()
    page.keyboard.press("x")  # not one of ?keys=
    page.keyboard.press("Shift")
    page.keyboard.press("j")
    page.keyboard.press("f")  # only the first press per result counts (?responses=all: all)
    wait_for(lambda: subj.getResponse(2, 7) != {}, what="the key press in getResponse")
    response = subj.getResponse(2, 7)
    assert response["key"] == "j"
    assert (response["runId"], response["trId"], response["value"]) == (2, 7, 0.5)
    # rt: from the display to the key press, on the page's clock
    assert 250 <= response["rt"] <= (pressed * 1000 - record["displayTime"]) + 200
    assert response["displayTime"] == record["displayTime"]
    print(f"key {response['key']!r} rt {response['rt']} ms")
    responses = after_the_page(page, subj)  # the later "f" would have arrived by now
    assert [r["key"] for r in responses] == ["j"]
    assert responses[0]["rt"] == response["rt"]
    assert subj.getAllResponses() == []
    # a message replaces the feedback: key presses no longer count
    subj.setMessage("Rest")
    page.wait_for_selector(".rtf-stage[data-state='empty']")
    page.keyboard.press("f")
    assert after_the_page(page, subj) == []
    assert console_errors == []


ODD = [-500, 0.001, 1e6, float("nan"), np.float32(-0.25), "abc", True]


@pytest.mark.parametrize("query", ["?min=-1&max=1", "?shape=circle&min=-1&max=1", ""])
def test_values_in_any_range_draw_without_errors(
    page, server, script, shots, console_errors, query
):
    open_page(page, server, "/feedback" + query)
    subj = script()
    drawn = []
    for tr, value in enumerate(ODD):
        subj.setResult(3, tr, value, 0)
        shown(page, tr + 1)
        drawn.append(page.evaluate(FIGURE))
        if tr == 2:
            name = re.sub(r"\W+", "-", query.strip("?")) or "auto"
            page.screenshot(path=str(shots / f"feedback-odd-{name}.png"))
        shown_for(page, tr, 120)  # at least minShowMs, so the next one is not queued
    size = "width" if "circle" in query else "height"
    sizes = [d[size] for d in drawn]
    print(f"{query or 'auto range'}: sizes {[round(s, 4) for s in sizes]}")
    print(f"labels {[d['label'] for d in drawn]}")
    nan, f32, text, true = drawn[3:]
    assert nan["state"] == "novalue" and nan["label"] == "no value"  # NaN arrives as null
    assert text["state"] == "novalue" and text["label"] == "no value (abc)"
    if query:  # fixed range -1..1: clamped at the ends, still shown, and marked
        assert sizes[:3] == pytest.approx([0.0, 0.5005, 1.0], abs=0.003)
        assert drawn[0]["low"] and drawn[2]["high"] and not drawn[1]["low"]
        assert drawn[0]["label"] == "-500 (below the range)"
        assert drawn[2]["label"] == "1.00e+6 (above the range)"
        assert f32["state"] == "value" and f32[size] == pytest.approx(0.375, abs=0.003)
        assert true[size] == pytest.approx(1.0, abs=0.003)  # True counts as 1
    else:  # automatic: the range of the values seen so far
        assert sizes[:3] == pytest.approx([0.5, 1.0, 1.0], abs=0.003)
        assert not any(d["low"] or d["high"] for d in drawn)
        assert f32[size] == pytest.approx(499.75 / (1e6 + 500), abs=0.003)
        assert drawn[1]["label"] == "0.001" and drawn[2]["label"] == "1.00e+6"
    assert len(set(round(s, 3) for s in sizes[:3])) >= 2  # visibly different
    assert console_errors == []


def test_the_page_fits_both_screens(browser, server, script, shots):
    subj = None
    for width, height in ((1920, 1080), (1366, 768)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        try:
            open_page(page, server, "/feedback?min=0&max=1")
            subj = script() if subj is None else subj
            subj.setMessage("Make the bar as high as you can: think of a calm place")
            subj.setResult(1, width, 0.6, 0)
            page.wait_for_selector(".rtf-stage[data-state='value']")
            boxes = page.evaluate(
                """() => ['.rtf-message', '.rtf-track', '.rtf-value', '.rtf-range'].map(s => {
                    const r = document.querySelector(s).getBoundingClientRect();
                    return [r.top, r.bottom, r.left, r.right, r.height];
                })"""
            )
            for top, bottom, left, right, box_height in boxes:
                assert 0 <= top and bottom <= height and 0 <= left and right <= width
                assert box_height > 0
            message, track = boxes[0], boxes[1]
            assert message[1] <= track[0]  # the text above the bar, not over it
            assert track[4] > height * 0.4  # a large bar
            font = page.evaluate(
                "parseFloat(getComputedStyle(document.querySelector('.rtf-message')).fontSize)"
            )
            assert font >= 36  # readable from the scanner bore (mirror)
            page.screenshot(path=str(shots / f"feedback-{width}x{height}.png"))
        finally:
            context.close()
        wait_for(lambda: not server.relay.peers(), what="the page to leave")


def test_without_a_session_the_page_redirects_to_login_and_back(page, server, console_errors):
    url = server.url + "feedback?shape=circle&min=-1&max=1"
    page.goto(url)
    assert "/login?next=" in page.url
    page.fill("#username", "test")
    page.fill("#password", "wrong")
    page.click("#login-submit")
    assert "Wrong user name or password" in page.text_content("#login-error")
    assert console_errors == ["Failed to load resource: the server responded with a status of 401 "
                              "(Unauthorized)"]  # the refused login itself  # fmt: skip
    console_errors.clear()
    log_in_at(page, url)  # back to the page, with its options
    page.wait_for_selector(".rtf-status[data-state='open']")
    assert page.get_attribute(".rtf-stage", "class").split()[:2] == ["rtf-stage", "rtf-circle"]
    # the page's files and data need the session too (401, not a login page)
    anonymous = page.context.browser.new_context()
    try:
        for path in ("static/rtcloud-feedback.js", "api/session", "jspsych/x.js"):
            assert anonymous.request.get(server.url + path).status == 401, path
    finally:
        anonymous.close()
    assert page.request.get(server.url + "api/session").json() == {"user": "test"}
    assert console_errors == []


RISKY = ("eval(", "new Function", "innerHTML", "insertAdjacentHTML", "document.write")


def test_the_one_time_login_link_can_lead_to_the_feedback_page(page, server):
    page.goto(f"{server.login_url}&next=/feedback%3Fshape%3Dcircle")
    page.wait_for_url(server.url + "feedback?shape=circle")
    page.wait_for_selector(".rtf-circle")
    page.wait_for_selector(".rtf-status[data-state='open']")


def test_only_our_own_scripts_run_no_eval(page, server):
    open_page(page, server, "/feedback")
    for path, scripts in (
        ("feedback", "'self';"),
        ("feedback/jspsych", "'self' https://unpkg.com;"),
    ):
        policy = page.request.get(server.url + path).headers["content-security-policy"]
        assert f"script-src {scripts}" in policy and "unsafe-eval" not in policy
    for name in (
        "rtcloud-feedback.js",
        "feedback.js",
        "jspsych-rtcloud-feedback.js",
        "feedback-jspsych.js",
    ):
        source = (WEB / name).read_text()
        for risky in RISKY:
            assert risky not in source, (name, risky)
    # a script the page did not ask for is refused by the browser (the policy works)
    blocked = page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', () => resolve(true));
            setTimeout(() => { try { eval('1'); resolve(false); } catch (e) { resolve(true); } });
        })"""
    )
    assert blocked


def test_the_page_reconnects_after_the_server_drops_it(page, server, script, shots):
    open_page(page, server, "/feedback")
    subj = script()
    subj.setMessage("Still here")
    page.wait_for_selector(".rtf-message >> text=Still here")
    page.evaluate(
        """() => { window.statuses = [];
                   RtcloudFeedback.shared().on('status', s => window.statuses.push(s)); }"""
    )
    (peer,) = server.relay.peers()
    # the server closes the page's socket (code 1012: service restart)
    asyncio.run_coroutine_threadsafe(peer._ws.close(code=1012), server.loop).result(5)
    page.wait_for_function("() => RtcloudFeedback.shared().connects === 2")
    assert page.evaluate("window.statuses") == ["reconnecting", "reconnecting", "open"]
    wait_for(lambda: len(server.relay.peers()) == 1, what="the page back as a peer")
    assert server.relay.peers()[0] is not peer
    subj.setResult(4, 0, 0.5, 100)
    (record,) = shown(page, 1)
    assert record["trId"] == 0 and abs(record["delayMs"] - 100) <= TOLERANCE_MS
    assert page.text_content(".rtf-message") == "Still here"


def test_after_a_server_restart_the_page_asks_for_a_login_and_carries_on(
    page, server_factory, script, shots, tmp_path
):
    first = server_factory()
    open_page(page, first, "/feedback")
    subj = script()
    subj.setResult(5, 0, 0.5, 0)
    shown(page, 1)
    first.stop()
    page.wait_for_selector(".rtf-status[data-state='reconnecting']")
    page.keyboard.press("k")  # while disconnected: kept, sent once connected again
    assert page.evaluate("rtcloudFeedbackPage.responses[0].sent") is False
    # a new server on the same address knows no session: the page says to log in
    second = server_factory(port=first.port)
    page.wait_for_selector(".rtf-banner[data-state='unauthorized']", timeout=20000)
    banner = page.text_content(".rtf-banner")
    assert "Log in at /login first" in banner
    assert page.get_attribute(".rtf-banner a", "href") == "/login?next=%2Ffeedback"
    page.screenshot(path=str(shots / "feedback-log-in-first.png"))
    # logging in (another tab of the same browser) is enough: the page reconnects by itself
    other = page.context.new_page()
    other.goto(second.url + "login")
    log_in_at(other, second.url)
    page.wait_for_selector(".rtf-status[data-state='open']", timeout=20000)
    assert page.is_hidden(".rtf-banner")
    subj = script()  # the script of the new server
    wait_for(lambda: subj.getResponse(5, 0) != {}, what="the response kept while disconnected")
    assert subj.getResponse(5, 0)["key"] == "k"
    wait_for(lambda: len(second.relay.peers()) == 1, what="the page as a peer")
    subj.setResult(5, 1, 0.7, 0)
    assert shown(page, 2)[1]["trId"] == 1


# ------------------------------------------------------------------ jsPsych


def install_jspsych(major):
    """jsPsych as scripts/bootstrap.py test installed it into .cache/ (no test downloads)."""
    prefix = CACHE / f"jspsych{major}"
    package = prefix / "node_modules" / "jspsych"
    if not (package / "dist").is_dir():
        pytest.skip(
            f"jsPsych {major} is not in {prefix}: the README's test command "
            "(python3 scripts/bootstrap.py test) installs it when npm is on the PATH"
        )
    if major == "7":
        version = json.loads((package / "package.json").read_text())["version"]
        assert version == JSPSYCH_CDN_VERSION, "bootstrap.py and the page disagree on jsPsych 7"
    return {"major": major, "prefix": prefix, "package": package, "dist": package / "dist"}


@pytest.fixture(scope="session", params=["7", "8"])
def jspsych(request):
    return install_jspsych(request.param)


@pytest.fixture(scope="session")
def jspsych_of_the_cdn():
    """The npm package of the version the page loads from unpkg.com (the same files)."""
    return install_jspsych("7")


def jspsych_data(page, where="rtcloudJsPsych"):
    return page.evaluate(f"{where}.data.get().filter({{trial_type: 'rtcloud-feedback'}}).values()")


def test_the_jspsych_plugin_in_a_real_jspsych(
    page, server_factory, script, jspsych, shots, console_errors
):
    # --jspsych takes the package's dist folder (7) or the npm --prefix folder (8)
    folder = jspsych["dist"] if jspsych["major"] == "7" else jspsych["prefix"]
    server = server_factory(jspsych=folder)
    dist = server.config.jspsych_dist
    assert dist is not None and dist.version.startswith(jspsych["major"] + ".")
    open_page(page, server, "/feedback/jspsych")
    assert page.get_attribute("body", "data-jspsych-source") == "local"
    note = page.text_content("#jspsych-source")
    assert f"jsPsych {dist.version} served by this rtcloud server" in note
    assert page.evaluate("rtcloudJsPsych.version()") == dist.version
    subj = script()
    subj.setMessage("Run 1: watch the bar")
    page.wait_for_selector(".rtf-message >> text=Run 1: watch the bar")
    page.screenshot(path=str(shots / f"jspsych{jspsych['major']}-message.png"))

    sent = time.time()
    subj.setResult(1, 0, 0.3, onsetTimeDelayMs=300)
    (first,) = shown(page, 1)
    page.wait_for_selector(".rtf-stage[data-state='value']")
    shown_for(page, 0, 200)  # an answer after 200 ms or more
    page.keyboard.press("f")
    wait_for(lambda: subj.getResponse(1, 0) != {}, what="the key press in getResponse")
    page.screenshot(path=str(shots / f"jspsych{jspsych['major']}-result.png"))
    subj.setResult(1, 1, 0.9, onsetTimeDelayMs=0)
    shown(page, 2)
    shown_for(page, 1, 150)
    page.keyboard.press("j")
    wait_for(lambda: subj.getResponse(1, 1) != {}, what="the second key press")
    subj.setMessage("end")
    page.wait_for_selector("body[data-finished='true']")
    page.screenshot(path=str(shots / f"jspsych{jspsych['major']}-end.png"))

    trials = [t for t in jspsych_data(page) if t["trId"] is not None]
    assert [(t["runId"], t["trId"], t["value"]) for t in trials] == [(1, 0, 0.3), (1, 1, 0.9)]
    zero, one = trials
    print(
        f"jsPsych {dist.version}: script->page {first['arrivalTime'] - sent * 1000:.1f} ms, "
        f"display-arrival {zero['arrival_to_display_ms']:.1f} ms (asked 300), "
        f"{one['arrival_to_display_ms']:.1f} ms (asked 0); rt {zero['rt']}, {one['rt']} ms"
    )
    assert abs(zero["arrival_to_display_ms"] - 300) <= TOLERANCE_MS
    assert abs(zero["display_time"] - zero["arrival_time"] - 300) <= TOLERANCE_MS + 2
    assert zero["arrival_time"] == first["arrivalTime"]
    assert -2 <= zero["arrival_time"] - sent * 1000 < 150
    assert one["arrival_to_display_ms"] < TOLERANCE_MS
    assert (zero["key"], zero["response"], zero["ended_by"]) == ("f", "f", "next_result")
    assert (one["key"], one["ended_by"], one["message"]) == ("j", "message", "end")
    assert 150 <= zero["rt"] <= 2000 and zero["response_sent"] is True
    # what the script sees is what jsPsych recorded
    for trial in trials:
        response = subj.getResponse(1, trial["trId"])
        assert (response["key"], response["rt"]) == (trial["key"], trial["rt"])
        assert response["source"] == "jsPsych rtcloud-feedback"
    assert sorted(r["key"] for r in subj.getAllResponses()) == ["f", "j"]
    assert console_errors == []


def test_a_jspsych_page_reloaded_after_the_end_of_a_run_shows_the_next_run(
    page, server_factory, script, jspsych
):
    """The page's end screen says to reload it for the next run. The server repeated its
    current message ("End run") to the reloaded page as if newly sent, which ended it at
    once: the next run's results were acknowledged but never shown."""
    folder = jspsych["dist"] if jspsych["major"] == "7" else jspsych["prefix"]
    server = server_factory(jspsych=folder)
    open_page(page, server, "/feedback/jspsych")
    subj = script()
    subj.setMessage("Run 1")
    subj.setResult(1, 0, 0.5, onsetTimeDelayMs=0)
    shown(page, 1)
    subj.setMessage("End run")
    page.wait_for_selector("body[data-finished='true']")
    page.reload()
    wait_for(lambda: len(server.relay.peers()) == 1, what="the reloaded page")
    page.wait_for_selector(".rtf-message >> text=End run")  # shown, and not ending the page
    for tr in range(3):  # a trial is recorded when the next result ends it
        subj.setResult(2, tr, float(tr), onsetTimeDelayMs=0)
    wait_for(
        lambda: (
            [(t["runId"], t["trId"]) for t in jspsych_data(page) if t["trId"] is not None][-2:]
            == [(2, 0), (2, 1)]
        ),
        what="run 2's trials on the reloaded page",
    )
    assert page.evaluate("document.body.dataset.finished") != "true"


def test_my_own_jspsych_page_in_the_jspsych_folder(
    page, server_factory, script, jspsych, tmp_path, shots, console_errors
):
    """examples/jspsych: a lab's own page, kept next to jsPsych, with the plugin's options."""
    folder = tmp_path / "experiment"
    shutil.copytree(jspsych["package"], folder / "node_modules" / "jspsych")
    for name in ("my-experiment.html", "my-experiment.js"):
        shutil.copy(REPO / "examples" / "jspsych" / name, folder / name)
    server = server_factory(jspsych=folder)
    # Long enough to answer the first result on a busy machine (a screenshot alone can take
    # a few hundred ms there); the second one is left to time out.
    open_page(page, server, "/jspsych/my-experiment.html?duration=1500")
    subj = script()
    subj.setMessage("Focus on the gauge")
    page.wait_for_selector(".rtf-message >> text=Focus on the gauge")
    subj.setMessage("Focus on the gauge; answer F or J")  # the instruction trial follows it
    page.wait_for_selector(".rtf-message >> text=answer F or J")

    subj.setResult(1, 0, 0.4, 0)  # ends the instructions; shown by our own stimulus function
    page.wait_for_selector(".gauge-level")
    width = page.evaluate("document.querySelector('.gauge-level').style.width")
    assert width == "40%"
    page.keyboard.press("x")  # not a choice (key events are handled in order)
    page.keyboard.press("f")  # a choice: ends the trial (response_ends_trial)
    page.wait_for_selector(".gauge-level", state="detached")
    wait_for(lambda: subj.getResponse(1, 0) != {}, what="the response")
    assert subj.getResponse(1, 0)["key"] == "f"

    subj.setResult(1, 1, 0.8, 0)  # no answer: trial_duration (1500 ms) ends it
    page.wait_for_selector(".gauge-level")
    page.screenshot(path=str(shots / "jspsych-own-page.png"))
    page.wait_for_selector(".gauge-level", state="detached")
    subj.setMessage("end")
    page.wait_for_selector("body[data-finished='true']")

    instructions, answered, timed_out, waiting = jspsych_data(page, "experiment")
    assert (waiting["ended_by"], waiting["trId"]) == ("message", None)  # "end" ended it
    assert instructions["ended_by"] == "next_result" and instructions["trId"] is None
    assert instructions["message"] == "Focus on the gauge; answer F or J"
    assert (answered["key"], answered["ended_by"], answered["trId"]) == ("f", "response", 0)
    assert (timed_out["key"], timed_out["ended_by"], timed_out["trId"]) == (None, "duration", 1)
    assert abs(timed_out["duration_ms"] - 1500) <= TOLERANCE_MS
    assert subj.getResponse(1, 1) == {}
    print(f"trial_duration 1500 ms: shown {timed_out['duration_ms']:.1f} ms")
    assert console_errors == []


def serve_cdn(page, package, tamper=False):
    """Answer the page's unpkg.com requests from the npm package (as unpkg itself does)."""

    def handle(route):
        path = route.request.url.split(f"/jspsych@{JSPSYCH_CDN_VERSION}/", 1)[1]
        body = (package / path).read_bytes() + (b"\n// changed" if tamper else b"")
        kind = "text/css" if path.endswith(".css") else "text/javascript"
        route.fulfill(
            status=200,
            body=body,
            headers={"Content-Type": kind, "Access-Control-Allow-Origin": "*"},
        )

    page.route("https://unpkg.com/**", handle)


def test_without_jspsych_option_the_page_uses_the_cdn_with_integrity(
    page, server, jspsych_of_the_cdn, script, console_errors
):
    serve_cdn(page, jspsych_of_the_cdn["package"])
    open_page(page, server, "/feedback/jspsych")
    assert page.get_attribute("body", "data-jspsych-source") == "cdn"
    assert "loaded from unpkg.com" in page.text_content("#jspsych-source")
    assert page.evaluate("rtcloudJsPsych.version()") == JSPSYCH_CDN_VERSION
    subj = script()
    subj.setResult(1, 0, 0.5, 0)
    page.wait_for_selector(".rtf-stage[data-state='value']")
    assert console_errors == []
    assert page.request.get(server.url + "jspsych/dist/index.browser.js").status == 404


@pytest.mark.parametrize("failure", ["offline", "changed"])
def test_when_the_cdn_fails_the_page_says_what_to_do(
    page, server, jspsych_of_the_cdn, failure, shots
):
    if failure == "offline":
        page.route("https://unpkg.com/**", lambda route: route.abort("internetdisconnected"))
    else:  # a changed file fails its integrity check
        serve_cdn(page, jspsych_of_the_cdn["package"], tamper=True)
    url = server.url + "feedback/jspsych"
    page.goto(url)
    log_in_at(page, url)
    page.wait_for_selector("#fatal:not([hidden])")
    text = page.text_content("#fatal")
    assert "jsPsych could not be loaded from https://unpkg.com/" in text
    assert "rtcloud serve --jspsych DIR" in text
    page.screenshot(path=str(shots / f"jspsych-cdn-{failure}.png"))


# ------------------------------------------------------------------ --jspsych


def test_jspsych_folder_layouts_and_clear_errors(jspsych, tmp_path):
    package = jspsych["package"].resolve()
    for given in (jspsych["dist"], package, jspsych["prefix"]):
        found = find_jspsych(given)
        assert (found.root / found.script).is_file() and found.script.endswith(".js")
        assert found.css is not None and (found.root / found.css).is_file()
        assert found.version is not None and found.version.startswith(jspsych["major"])
    assert find_jspsych(jspsych["dist"]).root == package  # dist: its package (for css/)
    with pytest.raises(InvocationError, match="not a folder"):
        find_jspsych(tmp_path / "missing")
    with pytest.raises(InvocationError, match="no jsPsych browser build"):
        find_jspsych(tmp_path)
    old = tmp_path / "jspsych-6.3.1"
    old.mkdir()
    (old / "jspsych.js").write_text("// jsPsych 6\n")
    (old / "package.json").write_text('{"name": "jspsych", "version": "6.3.1"}')
    with pytest.raises(InvocationError, match="needs jsPsych 7 or 8"):
        find_jspsych(old)


def test_serve_with_a_wrong_jspsych_folder_fails_clearly(project_dir, tmp_path, capsys):
    code = main(["serve", "-p", "proj", "-d", str(project_dir), "--port", "0", "--test",
                 "--jspsych", str(tmp_path)])  # fmt: skip
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--jspsych" in err and "npm install --prefix DIR jspsych@7" in err
    assert "Traceback" not in err
