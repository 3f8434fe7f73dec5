"""Playwright driving Debian's chromium against a real project server."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def foreign_site():
    """Another site: an HTTP server on another port of 127.0.0.1 serving ``pages[path]``."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield site, pages
    site.shutdown()
    site.server_close()
    thread.join(5)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    # A bound, not a wait: pages load in well under a second on a quiet machine, but take
    # 10-20 s while several test suites share two cores.
    page.set_default_timeout(45000)
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path):
    """Where screenshots go: $RTCLOUD_SCREENSHOTS if set (to look at them), else tmp."""
    folder = Path(os.environ.get("RTCLOUD_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, server, user="test", password="test"):
    page.goto(server.url)
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-submit")
    if user == "test" and password == "test":
        page.wait_for_selector("#ind-browser[data-state='on']")
