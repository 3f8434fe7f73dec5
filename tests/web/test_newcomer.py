"""What tripped a new user in their first hour, checked in a real browser (issue 16)."""

from __future__ import annotations

import logging

from conftest import log_in
from helpers import wait_for

CONFIG = """# Test project
title = "Test study"
subjectName = "sub01"
# runs to process
runNum = [1]
scanNum = [5]
numVolumes = 3 # volumes per run
pause = 0.01

# region of interest and switches
roiY = [36, 48]
flag = true
"""


def _write_whole(server, text):
    """Replace the config at once and wait until the server has seen the change, so the
    page is not redrawn under the test by the server's next look at the file."""
    path = server.settings.path
    temp = path.with_name(path.name + ".new")
    temp.write_text(text)
    temp.replace(path)
    wait_for(lambda: server._config_stamp == server.settings.stamp(), timeout=15)


def test_a_list_with_a_wrong_element_is_refused_naming_the_setting(page, server):
    _write_whole(server, CONFIG)
    log_in(page, server)
    page.click("#tab-settings")
    page.wait_for_selector("#setting-roiY")
    before = server.settings.path.read_text()
    page.fill("#setting-roiY", "36, abc")
    page.click("#save-settings")
    page.wait_for_selector("#settings-message.bad")
    message = page.text_content("#settings-message")
    assert 'roiY must be a list of whole numbers; item 2 ("abc") is not' in message
    assert "item 2" in page.text_content("[data-error-for='roiY']")
    assert server.settings.path.read_text() == before
    page.fill("#setting-roiY", "30, 40")
    page.click("#save-settings")
    page.wait_for_selector("#settings-message.ok")
    assert "roiY = [30, 40]" in server.settings.path.read_text()
    assert server.settings.load().roiY == [30, 40]


def test_settings_show_the_file_header_group_headings_and_aligned_checkboxes(page, server, shots):
    _write_whole(server, CONFIG)
    log_in(page, server)
    page.click("#tab-settings")
    page.wait_for_selector("#setting-flag")
    page.screenshot(path=str(shots / "settings-groups.png"))
    assert page.text_content("#config-header") == "Test project"
    # the header is not the first setting's description
    assert (
        page.evaluate("document.getElementById('setting-title').nextElementSibling.textContent")
        == ""
    )
    headings = page.eval_on_selector_all(
        "#settings-form .group", "els => els.map(e => e.textContent)"
    )
    assert "runs to process" in headings and "region of interest and switches" in headings
    # one heading above runNum and scanNum, none between them
    between = page.evaluate(
        "(() => { const a = document.getElementById('setting-runNum');"
        " const b = document.querySelector('label[for=setting-scanNum]');"
        " let n = a.nextElementSibling, seen = []; while (n && n !== b) { seen.push(n.className);"
        " n = n.nextElementSibling; } return seen; })()"
    )
    assert between == ["help"]
    # the server may still redraw the form once for the file it re-read: measure after that
    page.locator("#setting-flag").wait_for(state="visible")
    page.locator("#setting-title").wait_for(state="visible")
    checkbox = page.locator("#setting-flag").bounding_box(timeout=15000)
    text_input = page.locator("#setting-title").bounding_box(timeout=15000)
    assert checkbox is not None and text_input is not None
    assert abs(checkbox["x"] - text_input["x"]) < 2  # in the input column, at its left edge


def test_a_broken_config_is_shown_where_the_user_looks_and_picked_up_when_fixed(
    page, server, caplog, shots
):
    caplog.set_level(logging.INFO, logger="rtcloud.server.server")
    server.config_poll_interval = 0.1
    good = server.settings.path.read_text()
    log_in(page, server)
    page.wait_for_selector("#setting-numVolumes", state="attached")
    server.settings.path.write_text('title = "x"\nsubjectName = "s"\nrunNum = [1\nscanNum = [2]\n')
    page.wait_for_selector("#config-problem-run", state="visible")
    problem = page.text_content("#config-problem-run")
    assert "Cannot parse experiment config" in problem and "line 4, column 1" in problem
    assert page.is_disabled("#run-button")
    page.click("#tab-settings")
    assert page.is_visible("#config-problem-settings")
    assert page.is_disabled("#save-settings")
    page.screenshot(path=str(shots / "config-problem.png"))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("line 4, column 1" in e for e in errors), errors  # and in the terminal
    # a page opened while the file is broken still shows the services and the problem
    page.reload()
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.wait_for_selector("#config-problem-run", state="visible")
    page.wait_for_selector("#ind-data[data-state='local']")
    server.settings.path.write_text(good.replace("numVolumes = 3", "numVolumes = 4"))
    page.wait_for_selector("#config-problem-run", state="hidden")
    assert page.is_enabled("#run-button")
    page.click("#tab-settings")
    assert page.input_value("#setting-numVolumes") == "4"
    assert any("changed on disk" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ logs, runs, login


def run_and_wait(page, state="complete", timeout=60000):
    page.click("#tab-run")
    page.click("#run-button")
    page.wait_for_selector(f"#run-status[data-state='{state}']", timeout=timeout)


def log_position(page, selector):
    return page.eval_on_selector(
        selector,
        "el => ({top: el.scrollTop, height: el.clientHeight, total: el.scrollHeight,"
        " line: parseFloat(getComputedStyle(el).lineHeight), lines: el.childElementCount})",
    )


def test_the_log_tab_follows_lines_that_came_while_it_was_hidden(page, server, shots):
    server.settings.save({"numVolumes": 60, "pause": 0.0})
    log_in(page, server)
    page.click("#tab-plots")  # the logs fill up while hidden
    run_and_wait(page)
    page.click("#tab-log")
    page.screenshot(path=str(shots / "log-after-run.png"))
    pos = log_position(page, "#debug-log")
    assert pos["lines"] > 60 and pos["total"] > pos["height"]
    assert pos["top"] + pos["height"] >= pos["total"] - 1, pos  # at its end: "done" in view
    # whole lines: the first visible line is not cut in half at the top
    assert pos["top"] % pos["line"] == 0, pos
    assert page.locator("#debug-log div", has_text="done").last.is_visible()
    # the Run tab's log too, after a visit to another tab
    page.click("#tab-run")
    pos = log_position(page, "#user-log")
    assert pos["top"] + pos["height"] >= pos["total"] - 1 and pos["top"] % pos["line"] == 0
    # a user who scrolled up stays where they are when new lines come
    page.eval_on_selector("#user-log", "el => { el.scrollTop = 0; }")
    page.wait_for_function("() => document.getElementById('user-log').scrollTop === 0")
    page.click("#run-button")
    page.wait_for_selector("#run-status[data-state='complete']", timeout=60000)
    assert page.eval_on_selector("#user-log", "el => el.scrollTop") == 0


def test_a_failed_run_says_once_why(page, server, project_dir, shots):
    (project_dir / "proj.py").write_text(
        "print('working', flush=True)\nraise ValueError('the ROI is empty')\n"
    )
    log_in(page, server)
    run_and_wait(page, "failed")
    status = page.text_content("#run-status")
    error = page.text_content("#run-error")
    page.screenshot(path=str(shots / "run-failed.png"))
    assert status == "mainScript failed (exit status 1)"
    assert error == "ValueError: the ROI is empty"
    assert "the ROI is empty" not in status
    # the cause is in the error line and in the script's output, not in the status as well
    assert page.text_content("#pane-run").count("ValueError: the ROI is empty") == 2


def test_progress_ticks_and_the_session_log(page, server, shots, project_dir):
    log_in(page, server)
    run_and_wait(page)
    assert page.text_content("#run-progress-text") == "Run 1: TR 3 of 3"
    assert page.get_attribute("#run-progress-bar", "value") == "3"
    # the same run again, by a script that does not clear its plot: the count starts from
    # 1, not from the points the last run left
    script = project_dir / "proj.py"
    script.write_text(script.read_text().replace("ci.webInterface.clearRunPlot(run)", "pass"))
    server.settings.save({"pause": 0.5})
    page.click("#run-button")
    page.wait_for_selector("#run-progress-text >> text=Run 1: TR 1 of 3")
    page.wait_for_selector("#run-status[data-state='complete']")
    server.settings.save({"pause": 0.01})
    page.click("#tab-plots")
    page.wait_for_selector("#plot-run-1 .xtick text")
    ticks = page.eval_on_selector_all(
        "#plot-run-1 .xtick text", "els => els.map(e => e.textContent)"
    )
    page.screenshot(path=str(shots / "plot-short-run.png"))
    assert ticks and all(t.lstrip("-").isdigit() for t in ticks), ticks  # no "0.5"
    # Finalize keeps what Initialize printed; each under its own heading
    page.click("#tab-session")
    page.click("#init-button")
    page.wait_for_selector("#session-status[data-state='complete']")
    page.click("#finalize-button")
    page.wait_for_selector("#session-log >> text=finalized")
    page.wait_for_selector("#session-status[data-state='complete']")
    log = page.text_content("#session-log")
    assert "initialized" in log and "Initialize Session" in log and "Finalize Session" in log
    assert log.index("Initialize Session") < log.index("initialized") < log.index("finalized")


def test_a_script_s_own_run_status_text_is_shown(page, server):
    from rtcloud.interfaces.client import ClientInterface

    log_in(page, server)
    page.wait_for_selector("#run-status[data-state='idle']")
    ci = ClientInterface()
    try:
        ci.webInterface.sendRunStatus("calibrating: 2 of 5")
        page.wait_for_selector("#run-progress-text >> text=calibrating: 2 of 5")
        assert page.get_attribute("#run-status", "data-state") == "idle"  # not broken by it
    finally:
        ci.close()


def test_a_wrong_password_keeps_the_user_name_and_no_console_errors(page, server):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(server.url)
    page.wait_for_selector("#username")
    assert errors == []  # the login page: no missing favicon
    page.fill("#username", "test")
    page.fill("#password", "wrong")
    page.click("#login-submit")
    page.wait_for_selector("#login-error >> text=Wrong user name or password")
    assert page.input_value("#username") == "test"
    assert page.evaluate("document.activeElement.id") == "password"
    errors.clear()  # the 401 of the wrong password itself is logged by Chromium
    page.fill("#password", "test")
    page.click("#login-submit")
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.wait_for_selector("#setting-numVolumes", state="attached")
    icon = page.request.get(server.url + "assets/favicon.svg")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg")
    assert page.get_attribute("link[rel=icon]", "href") == "/assets/favicon.svg"
    assert errors == []  # no 404 for a favicon, nothing else


# ------------------------------------------------------------------ serve --replay


def sample_config(tmp_path, volumes, tr):
    import tomlkit

    from rtcloud.server.config import find_project_dir

    doc = tomlkit.parse((find_project_dir("sample") / "conf" / "sample.toml").read_text())
    doc["imgDir"], doc["numVolumes"], doc["trInterval"] = str(tmp_path / "scanner"), volumes, tr
    doc["resultsDir"] = str(tmp_path / "results")
    config = tmp_path / "sample.toml"
    config.write_text(tomlkit.dumps(doc))
    return config


def test_serve_replay_runs_the_sample_with_a_pretend_scanner(page, tmp_path, shots):
    from rtcloud.server.config import ServerConfig
    from rtcloud.server.server import ProjectServer

    volumes = 4
    config = sample_config(tmp_path, volumes, 0.5)
    server = ProjectServer(
        ServerConfig.for_project("sample", config=config, port=0, test=True, replay=True)
    ).start_in_thread()
    try:
        log_in(page, server)
        page.wait_for_selector('#replay-note:has-text("Simulated scanner")')  # state came
        note = page.text_content("#replay-note")
        assert "Simulated scanner" in note and str(tmp_path / "scanner") in note
        participant = page.context.new_page()
        participant.goto(server.url + "feedback")
        participant.wait_for_selector(".rtf-status, .rtf-badge, #stage", state="attached")
        page.click("#run-button")
        # the participant sees "Run 1" once the run's volumes come, not "Preparing run 1 ..."
        participant.wait_for_selector('.rtf-message >> text="Run 1"', timeout=60000)
        page.wait_for_selector("#run-status[data-state='complete']", timeout=60000)
        assert page.text_content("#user-log").count("run 1 TR ") == volumes
        assert page.text_content("#run-progress-text") == f"Run 1: TR {volumes} of {volumes}"
        page.screenshot(path=str(shots / "replay-run.png"))
        participant.close()
        # again with the same scan number: the old files are deleted, not read as new ones
        page.click("#run-button")
        page.wait_for_selector("#run-status[data-state='running']")
        page.wait_for_selector("#run-status[data-state='complete']", timeout=60000)
        user_log = page.text_content("#user-log")
        assert user_log.count("run 1 TR ") == volumes
        assert "warning" not in user_log and "BEFORE THIS RUN" not in user_log
        page.click("#tab-log")
        log = page.text_content("#debug-log")
        assert f"replay: scan 1: {volumes} volumes into {tmp_path / 'scanner'}" in log
        assert f"replay: deleted {volumes} files of scan 1" in log
    finally:
        server.stop()


def test_a_failed_session_script_says_why_on_the_session_tab(page, server, project_dir):
    """initialize.py's error went to the Run tab, in red, and stayed there after a good
    Finalize; the Session tab said only "initScript failed (exit status 2)"."""
    (project_dir / "initialize.py").write_text(
        "import sys\nprint('no stimulus folder', file=sys.stderr)\nsys.exit(2)\n"
    )
    log_in(page, server)
    page.click("#tab-session")
    page.click("#init-button")
    page.wait_for_selector("#session-status[data-state='failed']")
    page.wait_for_selector("#session-error >> text=no stimulus folder")
    assert page.text_content("#run-error") == ""
    page.click("#finalize-button")
    page.wait_for_selector("#session-status[data-state='complete']")
    assert page.text_content("#session-error") == ""
