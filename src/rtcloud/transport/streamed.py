"""A remote service's large result, passed on to the script while it still arrives.

The project server relays a data service's reply to a script without decoding it. A volume
of several megabytes reaches the server as a train of chunks; keeping them all before the
script may fetch the first byte would add the time of one more transfer to every volume.
Instead, as soon as the reply's payload is there (its first chunk), the server's channel
hands the call's caller a :class:`StreamedValue`: an
:class:`~rtcloud.rpc.codec.Encoded` whose out-of-band parts fill as the chunks come (fed
from the event loop by :mod:`rtcloud.transport.ws_server`). The side channel
(:mod:`rtcloud.transport.rpyc_blobs`) sends each piece on as soon as it is there.

Anything that needs the whole value (``buffers``, ``decode``, encoding it inline) waits for
the last piece. A value that will never be whole (the service disconnected, the call was
cancelled) raises the reason to whoever waits, and the deadline of the call bounds every
wait. Thread-safe: one thread feeds, any number wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from rtcloud.errors import CallTimeout, ProtocolError
from rtcloud.rpc.codec import Buffer, Encoded

__all__ = ["StreamedValue"]

#: Called once the value is whole (None) or never will be (the reason).
DoneCallback = Callable[[Exception | None], None]


class StreamedValue(Encoded):
    """An encoded value whose out-of-band parts are still arriving.

    Args:
        payload: the encoded value without its out-of-band parts.
        lengths: the size of each out-of-band part, in order.
        deadline: ``time.monotonic()`` after which waiting raises
            :class:`~rtcloud.errors.CallTimeout`.
        what: the call, for error messages (``DataInterface.getImageData``).
    """

    __slots__ = (
        "_callbacks",
        "_cond",
        "_deadline",
        "_done",
        "_error",
        "_filled",
        "_lengths",
        "_part",
        "_pieces",
        "_what",
    )

    def __init__(
        self, payload: bytes, lengths: Sequence[int], deadline: float, what: str = "the call"
    ) -> None:
        self.payload = payload
        self._lengths = tuple(int(n) for n in lengths)
        self._pieces: list[list[Buffer]] = [[] for _ in self._lengths]
        self._part = 0
        self._filled = 0
        self._cond = threading.Condition()
        self._done = False
        self._error: Exception | None = None
        self._deadline = deadline
        self._what = what
        self._callbacks: list[DoneCallback] = []
        self._pass_whole_parts()

    # ------------------------------------------------------------ fed by the channel

    def add(self, data: Buffer) -> None:
        """The next bytes of the current part (the channel checked their size)."""
        with self._cond:
            if self._part >= len(self._lengths):
                return
            self._pieces[self._part].append(data)
            self._filled += len(data)
            self._pass_whole_parts()
            self._cond.notify_all()

    def _pass_whole_parts(self) -> None:
        """Move on past the current part once it is whole, and past any empty part."""
        while self._part < len(self._lengths) and self._filled >= self._lengths[self._part]:
            self._part, self._filled = self._part + 1, 0

    def finish(self) -> None:
        """Every piece arrived."""
        self._end(None)

    def fail(self, error: Exception) -> None:
        """The value will never be whole: waiters get ``error``."""
        self._end(error)

    def _end(self, error: Exception | None) -> None:
        with self._cond:
            if self._done:
                return
            self._done = True
            self._error = error
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for callback in callbacks:
            callback(error)

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(error)`` once the value is whole (None) or failed; at once if it
        already is (in the thread that ends it, else in this one)."""
        with self._cond:
            if not self._done:
                self._callbacks.append(callback)
                return
            error = self._error
        callback(error)

    # ------------------------------------------------------------ read by the consumers

    @property
    def done(self) -> bool:
        return self._done

    @property
    def nbytes(self) -> int:
        return len(self.payload) + sum(self._lengths)

    def part_sizes(self) -> list[int]:
        return [len(self.payload), *self._lengths]

    def iter_part(self, index: int) -> Iterator[Buffer]:
        """The pieces of part ``index`` as they arrive (waiting for each, up to the deadline)."""
        if index == 0:
            yield self.payload
            return
        part = index - 1
        if self._lengths[part] == 0:
            return
        taken = 0
        while True:
            with self._cond:
                while not self._has(part, taken):
                    self._wait()
                pieces = self._pieces[part][taken:]
                over = part < self._part or self._done  # no more pieces will come to it
                whole = part < self._part
            yield from pieces
            taken += len(pieces)
            if over:
                if not whole:
                    raise ProtocolError(f"{self._what}: the result ended before it was whole")
                return

    @property
    def buffers(self) -> tuple[tuple[Buffer, ...], ...]:  # type: ignore[override]
        """Every out-of-band part, once all have arrived."""
        with self._cond:
            while not self._done:
                self._wait()
            if self._error is not None:
                raise self._error
            return tuple(tuple(pieces) for pieces in self._pieces)

    def _has(self, part: int, taken: int) -> bool:
        """Whether part ``part`` has pieces past ``taken``, or is over (lock held)."""
        if self._error is not None:
            raise self._error
        return len(self._pieces[part]) > taken or part < self._part or self._done

    def _wait(self) -> None:
        """Wait for the next change (lock held); raise the failure or the timeout."""
        if self._error is not None:
            raise self._error
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise CallTimeout(
                f"{self._what}: the result did not arrive whole before the call's deadline"
            )
        self._cond.wait(left)
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        state = "failed" if self._error else "whole" if self._done else "arriving"
        return f"<StreamedValue {state}: {self.nbytes} bytes, {len(self._lengths)} buffers>"
