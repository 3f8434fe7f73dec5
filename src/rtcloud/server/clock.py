"""The server's sense of time, as one object that tests can replace.

Login throttling waits, sessions and tokens expire: all of them read the time through a
:class:`Clock` handed to them, so a test drives them with a clock it advances by hand
instead of sleeping. :data:`SYSTEM_CLOCK` is the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SYSTEM_CLOCK", "SystemClock"]


class Clock(Protocol):
    """What the login machinery needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for waits and rate limits)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (for issue times that outlive the process)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (in the event loop)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
