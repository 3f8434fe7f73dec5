"""The Upload Files tab in a real browser: to the server and to a real remote data service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from conftest import log_in
from helpers import wait_for
from rtcloud.server.app import COOKIE_NAME

pytestmark = pytest.mark.browser


def open_upload_tab(page, server):
    log_in(page, server)
    page.click("#tab-upload")
    page.wait_for_selector("#upload-target option", state="attached")


def upload(page, *paths, folder=None, replace=False, saved=None):
    if folder is not None:
        page.fill("#upload-dir", str(folder))
    page.set_checked("#upload-replace", replace)
    page.set_input_files("#upload-files", [str(p) for p in paths])
    page.click("#upload-button")
    page.wait_for_selector("#upload-button:not([disabled])")
    page.wait_for_function(
        "n => document.querySelectorAll('#upload-list li.busy').length === 0", arg=0
    )
    return page.eval_on_selector_all(
        "#upload-list li", "els => els.map(e => [e.className, e.textContent])"
    )


def test_upload_to_the_server_with_progress_and_rules(page, server_factory, tmp_path, shots):
    server = server_factory(upload_limit=3 * 2**20)
    project = server.config.project_dir
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(os.urandom(2 * 2**20 + 123))
    open_upload_tab(page, server)
    rules = page.text_content("#upload-rules")
    assert str(project) in rules and ".nii.gz" in rules and "Up to 3.0 MB per file" in rules
    assert page.eval_on_selector_all("#upload-target option", "els => els.map(e => e.value)") == [
        "server"
    ]
    lines = upload(page, mask, folder="masks")
    page.screenshot(path=str(shots / "upload-server.png"))
    assert lines[0][0] == "ok" and str(project / "masks" / "mask.nii.gz") in lines[0][1]
    assert (project / "masks" / "mask.nii.gz").read_bytes() == mask.read_bytes()
    assert (
        page.get_attribute("#upload-progress", "value")
        == page.get_attribute("#upload-progress", "max")
        == str(mask.stat().st_size)
    )
    assert page.text_content("#upload-progress-text").startswith("100 %")
    page.click("#tab-log")
    assert "upload: test put mask.nii.gz (2.0 MB) on the server" in page.text_content("#debug-log")
    page.click("#tab-upload")
    # the same name again: refused unless Replace is ticked
    lines = upload(page, mask, folder="masks")
    assert lines[0][0] == "bad" and "already exists" in lines[0][1]
    mask.write_bytes(b"new")
    lines = upload(page, mask, folder="masks", replace=True)
    assert lines[0][0] == "ok" and (project / "masks" / "mask.nii.gz").read_bytes() == b"new"
    # a script type, a folder outside the project, a file above the limit: all refused
    script = tmp_path / "evil.py"
    script.write_text("print('x')")
    lines = upload(page, script, folder="masks")
    assert lines[0][0] == "bad" and "evil.py: this type of file cannot be uploaded" in lines[0][1]
    assert not (project / "masks" / "evil.py").exists()
    lines = upload(page, mask, folder="../../outside")
    assert lines[0][0] == "bad" and "is not inside the server's upload folders" in lines[0][1]
    assert not (tmp_path / "outside").exists()
    big = tmp_path / "big.npy"
    big.write_bytes(b"\0" * (3 * 2**20 + 1))
    lines = upload(page, big, folder="masks")
    assert (
        lines[0][0] == "bad" and "3145729 bytes is more than the limit of 3145728" in lines[0][1]
    )
    assert page.text_content("#upload-progress-text") == ""  # nothing was sent
    assert not (project / "masks" / "big.npy").exists()
    page.screenshot(path=str(shots / "upload-refused.png"))


def test_the_server_enforces_the_rules_itself(server_factory, tmp_path):
    server = server_factory(upload_limit=1000)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/api/upload?name=a.txt", content=b"x").status_code == 401
        client.get(server.login_url)
        client.cookies.get(COOKIE_NAME)
        origin = {"Origin": server.url.rstrip("/")}
        ok = client.post("/api/upload?name=a.txt&dir=up", content=b"hello", headers=origin)
        assert ok.status_code == 200, ok.text
        assert (server.config.project_dir / "up" / "a.txt").read_text() == "hello"
        foreign = client.post(
            "/api/upload?name=b.txt", content=b"x", headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and not (server.config.project_dir / "b.txt").exists()
        big = client.post("/api/upload?name=c.txt", content=b"x" * 1001, headers=origin)
        assert big.status_code == 413 and "up to 1000 bytes" in big.json()["error"]
        for name in ("../d.txt", "sub/d.txt", "", ".."):
            bad = client.post("/api/upload", params={"name": name}, content=b"x", headers=origin)
            assert bad.status_code == 400, name
        data = client.post("/api/upload?target=data&name=e.txt", content=b"x", headers=origin)
        assert data.status_code == 400  # no remote data service: only this server's rules
        assert json.loads(client.get("/api/upload").text)["limit"] == 1000


def start_data_service(server, folder, types):
    env = dict(os.environ, RTCLOUD_PASSWORD="test", PYTHONUNBUFFERED="1")
    host = server.url.split("//")[1].rstrip("/")
    cmd = [sys.executable, "-m", "rtcloud", "data-service", "-s", host, "-u", "test"]
    return subprocess.Popen(
        [*cmd, "-d", str(folder), "-f", types],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_upload_to_the_scanner_computer_through_the_data_service(
    page, server_factory, tmp_path, shots
):
    server = server_factory(data_remote=True)
    scanner_side = tmp_path / "scanner-computer"
    scanner_side.mkdir()
    open_upload_tab(page, server)
    # no data service yet: offered, but not available
    assert page.eval_on_selector("#upload-target option[value=data]", "e => e.disabled")
    service = start_data_service(server, scanner_side, ".txt,.nii")
    try:
        wait_for(lambda: server.service_connected("data"), what="the data service")
        page.click("#tab-run")
        page.click("#tab-upload")  # the rules are read again when the tab opens
        page.wait_for_selector(
            "#upload-target option[value=data]:not([disabled])", state="attached"
        )
        page.select_option("#upload-target", "data")
        assert ".txt, .nii" in page.text_content("#upload-rules")
        stimuli = tmp_path / "stimuli.txt"
        stimuli.write_text("face\nhouse\n")
        lines = upload(page, stimuli, folder=scanner_side / "lists")
        page.screenshot(path=str(shots / "upload-scanner.png"))
        assert lines[0][0] == "ok", lines
        assert (scanner_side / "lists" / "stimuli.txt").read_text() == "face\nhouse\n"
        # the data service's own rules: its -f types and its -d folders
        table = tmp_path / "table.csv"
        table.write_text("a,b\n")
        lines = upload(page, table, folder=scanner_side)
        assert lines[0][0] == "bad" and "allowed file types" in lines[0][1], lines
        lines = upload(page, stimuli, folder=tmp_path / "elsewhere")
        assert lines[0][0] == "bad" and "not within the allowed directories" in lines[0][1]
        assert not (tmp_path / "elsewhere").exists()
    finally:
        service.kill()
        service.communicate(timeout=10)
