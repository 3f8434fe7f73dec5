"""A page of another site, in a browser logged in to the server, cannot open service sockets.

The attack: the experimenter's Chromium holds a session cookie for the server; a page served
from another port of the same host (same site for cookies: ports do not count) opens
``/ws/service/data`` and ``/ws/service/subject``. It must neither push out the real data
service nor receive results as a feedback peer.
"""

from __future__ import annotations

from conftest import log_in
from helpers import wait_for

ATTACK_PAGE = """<!doctype html><html><body><script>
window.results = {};
for (const role of ["data", "subject"]) {
  const ws = new WebSocket("ws://127.0.0.1:%(port)d/ws/service/" + role);
  ws.onopen = () => { window.results[role] = "open"; };
  ws.onclose = (event) => { window.results[role] = "closed " + event.code; };
}
</script></body></html>"""


def test_a_foreign_page_cannot_open_the_service_sockets(page, server_factory, foreign_site):
    server = server_factory(data_remote=True, subject_remote=True)
    site, pages = foreign_site
    pages["/attack.html"] = (ATTACK_PAGE % {"port": server.port}).encode()
    log_in(page, server)  # the browser now holds a session cookie for 127.0.0.1
    assert any(c["name"] == "rtcloud_session" for c in page.context.cookies())
    page.goto(f"http://127.0.0.1:{site.server_address[1]}/attack.html")
    page.wait_for_function("window.results.data && window.results.subject", timeout=15000)
    results = page.evaluate("window.results")
    assert results["data"].startswith("closed") and results["subject"].startswith("closed")
    assert not server.channels["data"].connected
    assert server.relay.peer_names() == []
    # The server's own page still works in the same browser.
    page.goto(server.url)
    wait_for(lambda: page.get_attribute("#ind-browser", "data-state") == "on", what="page")
