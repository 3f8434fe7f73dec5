"""Calls a script sends without waiting for their replies (``@expose(posted=...)``).

A posted call (``webInterface.sendQuality``) is checked in the script's thread and queued;
one daemon thread per server connection sends the queued calls in order, each as an
ordinary call with its own deadline, on that thread's own RPyC connection. The script's
call costs the check and a queue put, not a round trip to the server.

Nothing is dropped quietly: the queue is bounded (a script that posts faster than the server
answers waits for room), the first delivery that fails is kept and raised by the next
:meth:`PostedCalls.post` (once), and :meth:`PostedCalls.flush` waits for what is queued, as
closing the connection does and as the script's exit does (a script that never closes its
``ClientInterface`` still delivers its last calls). Only the standard library is used.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from rtcloud.errors import RTCloudError, ServiceUnavailableError

__all__ = ["MAX_QUEUED", "PostedCalls"]

logger = logging.getLogger(__name__)

#: Calls queued at most; posting more waits until the sender catches up.
MAX_QUEUED = 1000

#: ``finish() -> (args, kwargs)``: run on the sending thread, gives the arguments to send.
Finish = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
#: ``send(interface, method, args, kwargs)``: one ordinary call (raises what it failed with).
Send = Callable[[str, str, tuple[Any, ...], dict[str, Any]], Any]


class PostedCalls:
    """The queue and the sending thread of one server connection's posted calls."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: queue.Queue[tuple[str, str, Finish] | None] = queue.Queue(MAX_QUEUED)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._unfinished = 0
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def post(self, interface: str, method: str, finish: Finish) -> None:
        """Queue one checked call; raise the failure of an earlier one, if any."""
        with self._lock:
            if self._closed:
                raise ServiceUnavailableError(
                    f"{interface}.{method}: this connection to the project server is closed"
                )
            failure, self._failure = self._failure, None
            if failure is None:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="rtcloud-posted", daemon=True
                    )
                    self._thread.start()
                    atexit.register(_flush_at_exit, weakref.ref(self))
                self._unfinished += 1
        if failure is not None:
            raise failure
        self._queue.put((interface, method, finish))

    def flush(self, timeout: float) -> bool:
        """Wait until every queued call was sent (or failed); False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Send what is queued (up to ``timeout`` s), then stop the sending thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            interface, method, finish = item
            try:
                args, kwargs = finish()
                self._send(interface, method, args, kwargs)
            except Exception as exc:  # kept for the script's next posted call
                logger.warning("%s.%s could not be delivered: %s", interface, method, exc)
                with self._lock:
                    if self._failure is None:
                        self._failure = _earlier(interface, method, exc)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()


#: Seconds a script's exit waits for its queued posted calls.
EXIT_FLUSH = 5.0


def _flush_at_exit(ref: weakref.ReferenceType[PostedCalls]) -> None:
    posted = ref()
    if posted is not None and not posted.flush(EXIT_FLUSH):
        logger.warning("the script ended with posted calls still unsent after %g s", EXIT_FLUSH)


def _earlier(interface: str, method: str, exc: Exception) -> Exception:
    """``exc`` as the script's next posted call raises it: same type where possible."""
    text = f"{interface}.{method}: an earlier call was not delivered: {exc}"
    if isinstance(exc, RTCloudError):
        try:
            return type(exc)(text)
        except Exception:  # a constructor that takes other arguments
            pass
    return ServiceUnavailableError(text)
