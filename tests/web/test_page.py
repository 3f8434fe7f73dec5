"""The experimenter page in a real browser: login, settings, runs, plots, stop, every tab."""

from __future__ import annotations

import threading

import tomlkit

from conftest import log_in
from rtcloud.server.config import ServerConfig
from rtcloud.server.server import ProjectServer
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series


def test_login_wrong_password_then_right(page, server, shots):
    page.goto(server.url)
    assert "/login" in page.url  # no session: redirected to the login page
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#username", "test")
    page.fill("#password", "wrong")
    with page.expect_response(lambda r: r.url.endswith("/login")) as info:
        page.click("#login-submit")
    assert info.value.status == 401
    assert "Wrong user name or password" in page.text_content("#login-error")
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    assert page.text_content("#title") == "Test study"
    assert page.text_content("#user") == "test"


def test_every_tab_renders(page, server, shots):
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.wait_for_selector("#setting-numVolumes", state="attached")
    for tab in ("run", "session", "settings", "plots", "log"):
        page.click(f"#tab-{tab}")
        assert page.is_visible(f"#pane-{tab}")
        page.screenshot(path=str(shots / f"tab-{tab}.png"))
    # local services show as served inside the server
    assert page.get_attribute("#ind-data", "data-state") == "local"


def test_settings_are_saved_with_comments_and_bad_values_refused(page, server):
    log_in(page, server)
    page.click("#tab-settings")
    page.wait_for_selector("#setting-numVolumes")
    assert "volumes per run" in page.text_content("#pane-settings")
    page.fill("#setting-numVolumes", "9")
    page.click("#save-settings")
    page.wait_for_selector("#settings-message.ok")
    text = server.settings.path.read_text()
    assert "numVolumes = 9 # volumes per run" in text and "# runs to process" in text
    before = server.settings.path.read_text()
    page.fill("#setting-numVolumes", "")
    page.fill("#setting-subjectName", "new name")
    page.click("#save-settings")
    page.wait_for_selector("#settings-message.bad")
    assert "numVolumes" in page.text_content("#settings-message")
    assert server.settings.path.read_text() == before


def test_stop_a_run_midway(page, server):
    server.settings.save({"numVolumes": 2000, "pause": 0.02})
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.click("#run-button")
    page.wait_for_selector("#user-log >> text=run 1 tr 5 ")
    # the Session tab's Stop belongs to session scripts: its status says idle
    assert page.is_disabled("#session-stop-button")
    assert page.text_content("#session-status") == "idle"
    page.click("#stop-button")
    page.wait_for_selector("#run-status[data-state='stopped']")
    assert page.is_enabled("#run-button")


def sample_server(tmp_path, volumes, tr):
    """The real sample project, reading a scanner folder that a replay fills."""
    source, scanner = tmp_path / "source", tmp_path / "scanner"
    scanner.mkdir()
    from rtcloud.server.config import find_project_dir

    sample = find_project_dir("sample")
    doc = tomlkit.parse((sample / "conf" / "sample.toml").read_text())
    generate_series(source, num_volumes=volumes, tr_ms=int(tr * 1000), scan=1)
    doc["imgDir"], doc["numVolumes"], doc["trInterval"] = str(scanner), volumes, tr
    doc["resultsDir"] = str(tmp_path / "results")
    config = tmp_path / "sample.toml"
    config.write_text(tomlkit.dumps(doc))
    server = ProjectServer(
        ServerConfig.for_project("sample", config=config, port=0, test=True)
    ).start_in_thread()
    return server, source, scanner


def test_run_the_sample_project_against_a_replayed_series(page, tmp_path, shots):
    volumes = 5
    server, source, scanner = sample_server(tmp_path, volumes, 0.3)
    try:
        log_in(page, server)
        page.wait_for_selector("#ind-browser[data-state='on']")
        page.fill("#run-num", "1")
        page.fill("#scan-num", "1")
        page.click("#run-button")
        page.wait_for_selector("#run-status[data-state='running']")
        replay = threading.Thread(
            target=replay_series, args=(source, scanner), kwargs={"tr": 0.3, "mode": "pieces"}
        )
        replay.start()
        page.wait_for_selector("#run-status[data-state='complete']", timeout=30000)
        replay.join()
        log = page.text_content("#user-log")
        assert log.count("run 1 TR ") == volumes
        page.click("#tab-plots")
        page.wait_for_selector(f"#plot-run-1[data-points='{volumes}']")
        page.wait_for_selector("#plot-run-1 .main-svg")
        page.screenshot(path=str(shots / "plots-after-run.png"))
        page.click("#tab-log")
        assert "sample: all runs complete" in page.text_content("#debug-log")
    finally:
        server.stop()


def test_an_open_page_goes_to_the_login_when_its_session_ends(page, server, shots):
    """Logging out elsewhere (another tab, or a stolen copy of the cookie being ended) left
    an open page showing the experiment and retrying its channel forever."""
    import httpx

    from rtcloud.server.app import COOKIE_NAME

    log_in(page, server)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    with httpx.Client(base_url=server.url, cookies={COOKIE_NAME: cookie}) as other_tab:
        assert other_tab.post("/logout").status_code == 303
    page.wait_for_url("**/login?next=*", timeout=15000)
    assert page.locator("#login-submit").is_visible()
    page.screenshot(path=str(shots / "session-ended.png"))
    log_in(page, server)  # and logging in again brings the page back
    assert page.url.rstrip("/") == server.url.rstrip("/")


def test_what_the_experimenter_typed_survives_another_tab_saving(page, browser, server):
    """Every `config` message (a reconnect, another tab's save, the file touched) reset Run
    # and Scan # to the file's values and rebuilt the Settings form, so the next Run used
    run 1 / scan 1 and unsaved edits vanished; every tab said "Saved."; and Run used the
    saved file while the form showed other values."""
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.fill("#run-num", "3")
    page.fill("#scan-num", "7")
    page.click("#tab-settings")
    page.fill("#setting-numVolumes", "25")  # not saved
    other = browser.new_page()
    try:
        log_in(other, server)
        other.click("#tab-settings")
        other.fill("#setting-subjectName", "another")
        other.click("#save-settings")
        other.wait_for_selector("#settings-message.ok")
    finally:
        other.close()
    page.wait_for_selector("#settings-message.bad >> text=The settings file changed")
    assert page.input_value("#setting-numVolumes") == "25"
    assert page.text_content("#settings-message") != "Saved."
    page.click("#tab-run")
    assert (page.input_value("#run-num"), page.input_value("#scan-num")) == ("3", "7")
    page.click("#run-button")  # unsaved settings: Run says so and starts nothing
    assert "not saved" in page.text_content("#run-error")
    assert page.get_attribute("#run-status", "data-state") != "running"
    page.click("#tab-settings")
    page.click("#save-settings")
    page.wait_for_selector("#settings-message.ok")
    text = server.settings.path.read_text()
    assert "numVolumes = 25" in text and "another" in text  # both tabs' changes kept


FLOOD_SCRIPT = """
import time
for i in range(20000):
    print(f"line {i} of the flood")
print("flood done", flush=True)
time.sleep(60)
"""


def test_a_flood_of_output_leaves_the_page_usable(page, server_factory, project_dir):
    """20,000 lines printed at once froze the page for about two minutes (each line made it
    lay the log out again), Stop included."""
    (project_dir / "proj.py").write_text(FLOOD_SCRIPT)
    server = server_factory()
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.click("#run-button")
    page.wait_for_selector("#user-log >> text=flood done", timeout=20000)
    assert page.locator("#user-log > div").count() <= 5000
    page.click("#stop-button", timeout=5000)
    page.wait_for_selector("#run-status[data-state='stopped']", timeout=10000)


SLOW_SCRIPT = """
import time
for i in range(30):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
"""


def test_a_page_reloaded_mid_run_shows_the_run_s_output_from_its_start(
    page, server_factory, project_dir
):
    """The Run log of a page opened or reloaded mid-run (or back after a dropped link)
    started empty: what the script printed before was gone, with no sign of it."""
    (project_dir / "proj.py").write_text(SLOW_SCRIPT)
    server = server_factory()
    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.click("#run-button")
    page.wait_for_selector("#user-log >> text=line 8")
    page.reload()
    page.wait_for_selector("#run-status[data-state='complete']", timeout=20000)
    page.wait_for_selector("#user-log >> text=line 29")
    lines = page.eval_on_selector_all("#user-log > div", "els => els.map(e => e.textContent)")
    assert lines == [f"line {i}" for i in range(30)]
