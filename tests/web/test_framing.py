"""No page of the server can be shown inside another site's frame (clickjacking).

A real Chromium, logged in to the server, opens a page of another site (another port of
127.0.0.1) that frames the experimenter page and the feedback pages; none of them may load.
Every response, of every route, says so in its headers.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import log_in

FRAMES = ("/", "/feedback", "/feedback/jspsych", "/login")

FRAMING_PAGE = """<!doctype html><html><body><script>
window.loaded = {};
for (const path of %(paths)s) {
  const frame = document.createElement("iframe");
  frame.name = path;
  frame.onload = () => { window.loaded[path] = true; };
  frame.src = "http://127.0.0.1:%(port)d" + path;
  document.body.appendChild(frame);
}
</script></body></html>"""


def test_another_site_cannot_frame_any_page(page, server, foreign_site):
    site, pages = foreign_site
    pages["/frame.html"] = (FRAMING_PAGE % {"paths": list(FRAMES), "port": server.port}).encode()
    log_in(page, server)
    page.goto(f"http://127.0.0.1:{site.server_address[1]}/frame.html")
    page.wait_for_function(f"Object.keys(window.loaded).length == {len(FRAMES)}")
    framed = {frame.name: frame for frame in page.frames if frame is not page.main_frame}
    assert sorted(framed) == sorted(FRAMES)
    for path, frame in framed.items():
        # A refused frame holds the browser's error page, not ours: no element of our pages.
        ours = frame.evaluate(
            "() => !!document.querySelector('#ind-browser, #login-submit, script[src]')"
        )
        assert not ours, f"{path} was shown inside another site's page"


@pytest.mark.parametrize("logged_in", [False, True])
def test_every_response_forbids_framing(server, logged_in):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        if logged_in:
            client.post("/login", data={"username": "test", "password": "test"})
        for path in [*FRAMES, "/static/app.js", "/api/config", "/assets/login.css", "/nowhere"]:
            response = client.get(path)
            assert response.headers.get("x-frame-options") == "DENY", path
            policy = response.headers.get("content-security-policy", "")
            assert "frame-ancestors 'none'" in policy, (path, policy)
            assert response.headers.get("x-content-type-options") == "nosniff", path
