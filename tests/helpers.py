"""Small helpers shared by the tests (imported as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import time
from pathlib import Path

#: The repository's root folder.
REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=20.0, what="condition"):
    """Poll ``predicate`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
