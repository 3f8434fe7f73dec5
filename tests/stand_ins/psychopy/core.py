"""``core.Clock``: seconds since it was made or reset."""

import time


class Clock:
    def __init__(self):
        self._reset = time.monotonic()

    def reset(self):
        self._reset = time.monotonic()

    def getTime(self):  # noqa: N802 (PsychoPy's name)
        return time.monotonic() - self._reset

    def getLastResetTime(self):  # noqa: N802
        return self._reset
