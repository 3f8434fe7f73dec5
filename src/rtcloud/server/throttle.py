"""Login throttling: wrong guesses queue one behind another, per client address and per user.

Each login attempt takes a turn (:meth:`LoginThrottle.reserve`) on every key it is made
under (``ip:ADDRESS`` and ``user:NAME``) before its password is checked. The first ``free``
attempts of a key may go at once; after that each turn comes ``base`` seconds after the
previous one, doubling with every further attempt up to ``cap``. An attempt counts as failed
from the moment it takes its turn until :meth:`LoginThrottle.succeeded` clears the key, so
thirty attempts sent at the same moment queue behind one another instead of all being
checked at once. An attempt whose turn is more than ``max_wait`` seconds away is refused
on the spot (:class:`LoginThrottled`, answered with HTTP 429 and ``Retry-After``), so a
flood holds no connections open.

A browser or service that has logged in as the user before carries a device token
(:class:`~rtcloud.server.auth.DeviceTokens`); its attempts are made under the key of that
token alone, so strangers guessing the user's password cannot keep it out.

Time comes from an injected :class:`~rtcloud.server.clock.Clock`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rtcloud.errors import AuthenticationError
from rtcloud.server.clock import SYSTEM_CLOCK, Clock

__all__ = ["LoginThrottle", "LoginThrottled"]


class LoginThrottled(AuthenticationError):
    """Too many recent login attempts under one key: try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Record:
    count: int = 0  # attempts that failed or are still being checked
    ready_at: float = 0.0  # the earliest the next attempt may be checked
    last: float = 0.0  # when the last attempt took its turn


class LoginThrottle:
    """Gives each login attempt its turn; see the module docstring."""

    def __init__(
        self,
        *,
        free: int = 3,
        base: float = 0.5,
        cap: float = 30.0,
        max_wait: float = 60.0,
        forget_after: float = 900.0,
        max_records: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.free, self.base, self.cap = free, base, cap
        self.max_wait = max_wait
        self.forget_after = forget_after
        self.max_records = max_records
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def gap(self, count: int) -> float:
        """Seconds between the turn of the ``count``-th attempt and the next one."""
        if count < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** (count - self.free)))

    def reserve(self, *keys: str) -> float:
        """Take the next turn on ``keys``; return the seconds to wait before checking.

        Raises:
            LoginThrottled: the turn is more than ``max_wait`` away; nothing was reserved.
        """
        now = self.clock.monotonic()
        with self._lock:
            self._sweep(now)
            start = now
            for key in keys:
                record = self._records.get(key)
                if record is not None:
                    start = max(start, record.ready_at)
            wait = start - now
            if wait > self.max_wait:
                raise LoginThrottled(
                    f"too many failed logins; try again in {wait:.0f} s", retry_after=wait
                )
            for key in keys:
                record = self._records.pop(key, None) or _Record()
                record.count += 1
                record.ready_at = start + self.gap(record.count)
                record.last = now
                self._records[key] = record  # re-inserted: the dict runs oldest to newest
        return wait

    def succeeded(self, *keys: str) -> None:
        """The attempt was right: forget these keys' failures."""
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

    def pending(self, key: str) -> int:
        """Attempts counted against ``key`` (failed or being checked)."""
        with self._lock:
            record = self._records.get(key)
            return 0 if record is None else record.count

    def _sweep(self, now: float) -> None:
        """Drop quiet records (once a minute), and the oldest ones beyond ``max_records``."""
        if now >= self._next_sweep:
            self._next_sweep = now + 60.0
            for key in [
                k
                for k, r in self._records.items()
                if now - r.last > self.forget_after and r.ready_at <= now
            ]:
                del self._records[key]
        while len(self._records) >= self.max_records:
            del self._records[next(iter(self._records))]
