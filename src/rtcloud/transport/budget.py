"""The bytes all the server's service connections may hold in unfinished messages, together.

Each connection bounds the messages it is still receiving (``Limits.max_bytes_in_flight``,
2 GiB); :data:`SERVER_BUDGET` bounds their sum over every connection of the process, so
several peers (three subject services, say) cannot each hold a connection's worth. A
message that would pass it is refused and its connection dropped, with an error that says
why. The default is one largest message (``Limits.max_message_size``): one legitimate large
transfer always fits.
"""

from __future__ import annotations

import threading

from rtcloud.rpc.messages import Limits

__all__ = ["SERVER_BUDGET", "SharedBudget"]


class SharedBudget:
    """A thread-safe :class:`~rtcloud.rpc.protocol.Budget` of ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Bytes reserved now."""
        return self._used

    def take(self, size: int) -> bool:
        with self._lock:
            if self._used + size > self.limit:
                return False
            self._used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)

    def describe(self) -> str:
        return f"{self._used} bytes held of {self.limit}"


#: Shared by every service connection of this server process.
SERVER_BUDGET = SharedBudget(Limits().max_message_size)
