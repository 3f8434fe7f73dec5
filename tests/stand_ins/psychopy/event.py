"""``event.getKeys``: the keys pressed since the last call."""

import threading
import time

_lock = threading.Lock()
_pressed = []  # (key, monotonic time)
#: which display (0 = the first flip) each press answered, for tests
ANSWERED = []


def press(key, display):
    with _lock:
        _pressed.append((key, time.monotonic()))
        ANSWERED.append(display)


def getKeys(timeStamped=False):  # noqa: N802 (PsychoPy's name)
    with _lock:
        keys = list(_pressed)
        _pressed.clear()
    if hasattr(timeStamped, "getLastResetTime"):
        return [(key, at - timeStamped.getLastResetTime()) for key, at in keys]
    return [key for key, _ in keys]
