"""What tripped a new user in their first hour, checked in a real browser (issue 16)."""

from __future__ import annotations

import logging

from conftest import log_in

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


def test_a_list_with_a_wrong_element_is_refused_naming_the_setting(page, server):
    server.settings.path.write_text(CONFIG)
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
    server.settings.path.write_text(CONFIG)
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
    checkbox = page.locator("#setting-flag").bounding_box()
    text_input = page.locator("#setting-title").bounding_box()
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
