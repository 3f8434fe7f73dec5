"""An experimenter's page, as the benchmark keeps one open: logged in, on ``/ws/ui``, reading.

In a real session the experimenter's browser page is open and receives every
``plotDataPoint`` and log line, so the benchmark measures with one connected too. It logs in
as the ``--test`` user, asks for the state the way the page does (``getState``), and counts
what arrives by ``cmd``; :meth:`ExperimenterPage.close` returns the counts, so a run can show
that the page really got the points it plotted.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import urllib.parse
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class ExperimenterPage:
    """One page connection to the server at ``address`` (``host:port``)."""

    def __init__(self, address: str, user: str = "test", password: str = "test") -> None:
        conn = http.client.HTTPConnection(address, timeout=10)
        body = urllib.parse.urlencode({"username": user, "password": password, "next": "/"})
        conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        conn.close()
        cookie = (response.getheader("set-cookie") or "").split(";", 1)[0]
        if not cookie:
            raise RuntimeError(f"the page could not log in (HTTP {response.status})")
        self._ws = connect(
            f"ws://{address}/ws/ui", additional_headers={"Cookie": cookie}, open_timeout=10
        )
        self._ws.send(json.dumps({"cmd": "getState"}))
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="bench-page", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in self._ws:
                cmd = json.loads(text).get("cmd", "?")
                with self._lock:
                    self.counts[str(cmd)] += 1
        except ConnectionClosed:
            return

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counts)

    def close(self) -> dict[str, Any]:
        """Close the page; return how many messages of each ``cmd`` it received."""
        self._ws.close()
        self._thread.join(10)
        return self.snapshot()
