"""Marking the methods of an interface that may be called from another process.

``@expose`` is the allow-list: the RPC dispatcher and the RPyC bridge call only methods that
carry the mark, never private names, dunders or attributes. Called in-process, an exposed
method also accepts and ignores ``rpc_timeout=`` so that one script runs unchanged whether
its interfaces are local or remote (RT-Cloud raised TypeError there).

``@expose(quick=True)`` also says the method never blocks (no waiting for files, peers or
locks held long): a remote service then runs it at once, in order, instead of handing it
to a worker thread, which saves a thread switch on every call of ``setResult``.

``@expose(posted=check)`` says a script need not wait for the method's reply: through the
project server, the script's proxy calls ``check`` with the call's arguments (which raises
what is wrong with them, in the script), then hands the call to one background thread that
sends such calls in order and returns at once. ``check`` returns a function that gives the
arguments to send (it runs on that thread, so it may finish work ``check`` left undone). A
delivery that fails is raised by the script's next posted call, and the proxy's
``close`` waits for what is still queued. In-process, the method runs as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from rtcloud.rpc.dispatch import EXPOSED_MARK, POSTED_MARK, QUICK_MARK, exposed_names

__all__ = [
    "EXPOSED_MARK",
    "POSTED_MARK",
    "QUICK_MARK",
    "Interface",
    "PostedCheck",
    "expose",
    "exposed_methods",
]

#: ``check(*args, **kwargs)`` of a posted method: raises on bad arguments, else returns the
#: function (run on the sending thread) that gives the ``(args, kwargs)`` to send.
PostedCheck = Callable[..., Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]]


F = TypeVar("F", bound=Callable[..., Any])


@overload
def expose(func: F) -> F: ...


@overload
def expose(*, quick: bool = False, posted: PostedCheck | None = None) -> Callable[[F], F]: ...


def expose(
    func: F | None = None, *, quick: bool = False, posted: PostedCheck | None = None
) -> F | Callable[[F], F]:
    """Mark ``func`` as callable through RPC; drop an ``rpc_timeout`` keyword in local calls.

    Use as ``@expose``, ``@expose(quick=True)`` for a method that never blocks, or
    ``@expose(posted=check)`` for one whose caller need not wait (module docstring).
    """

    def mark(target: F) -> F:
        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop("rpc_timeout", None)
            return target(*args, **kwargs)

        setattr(wrapper, EXPOSED_MARK, True)
        setattr(wrapper, QUICK_MARK, bool(quick))
        if posted is not None:
            setattr(wrapper, POSTED_MARK, posted)
        return cast(F, wrapper)

    return mark(func) if func is not None else mark


def exposed_methods(cls: type) -> frozenset[str]:
    """Names of the exposed methods of an interface class."""
    return exposed_names(cls)


class Interface:
    """Base of the in-process interfaces: the bits of RT-Cloud's remoteable API they share."""

    #: Default timeout, in seconds, of calls that go to a remote service (hop 2).
    rpc_timeout: float = 60.0
    #: RT-Cloud's attribute: False for an object that does the work in this process.
    isRemote: bool = False

    def isRunningRemote(self) -> bool:
        """False: this object does the work itself, in this process."""
        return False

    def setRPCTimeout(self, timeout: float) -> None:
        """Set the default timeout of remote calls; kept but unused by in-process objects."""
        self.rpc_timeout = float(timeout)
