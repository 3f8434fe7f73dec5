"""Dispatcher: runs the peer's calls on registered local objects, allowed methods only.

Each interface name maps to one object and an allow-list of method names: either given
explicitly, or every public method marked exposed (the ``@expose`` decorator of
:mod:`rtcloud.interfaces.expose` sets ``__rtcloud_exposed__ = True`` on the function).
Private and dunder names, attributes that are not callable, and anything not on the list
are refused with :class:`~rtcloud.errors.ValidationError`; there is no attribute access.

:meth:`Dispatcher.dispatch` runs a call and returns the value (raising the method's own
exception); :meth:`Dispatcher.invoke` turns either outcome into a Result or Error message
for :meth:`RpcConnection.reply <rtcloud.rpc.protocol.RpcConnection.reply>`. A transport
runs these wherever it runs user code (a worker thread), not in the protocol.

Pure module: no sockets, threads or clocks; it never imports asyncio, socket, threading,
time, rpyc, starlette or websockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from rtcloud.errors import ValidationError
from rtcloud.rpc.messages import Error, Result
from rtcloud.rpc.protocol import PartSink

__all__ = [
    "EXPOSED_MARK",
    "POSTED_MARK",
    "QUICK_MARK",
    "CallLike",
    "Dispatcher",
    "error_reply",
    "exposed_names",
]

#: Attribute that marks a function as callable from another process.
EXPOSED_MARK = "__rtcloud_exposed__"
#: Attribute that marks an exposed function as never blocking (it may run inline).
QUICK_MARK = "__rtcloud_quick__"
#: Attribute of an exposed method called through the project server without waiting for
#: its reply: the function that checks a call in the script's process (see ``expose``).
POSTED_MARK = "__rtcloud_posted__"


class CallLike(Protocol):
    """What a call needs for dispatch (an IncomingCall event or a Call message)."""

    @property
    def call_id(self) -> int: ...
    @property
    def interface(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...


def _public(name: object) -> bool:
    return isinstance(name, str) and bool(name) and not name.startswith("_")


def exposed_names(obj: object) -> frozenset[str]:
    """Public methods of ``obj``'s class that carry the exposed mark."""
    cls = obj if isinstance(obj, type) else type(obj)
    names = set()
    for name in dir(cls):
        if not _public(name):
            continue
        attr = getattr(cls, name, None)
        if callable(attr) and getattr(attr, EXPOSED_MARK, False) is True:
            names.add(name)
    return frozenset(names)


def error_reply(call_id: int, exc: BaseException) -> Error:
    """The Error message that reports ``exc`` as the outcome of call ``call_id``."""
    return Error.from_exception(call_id, exc)


class Dispatcher:
    """Maps ``(interface, method)`` to allowed methods of registered objects."""

    def __init__(self) -> None:
        self._objects: dict[str, object] = {}
        self._allowed: dict[str, frozenset[str]] = {}

    def register(self, interface: str, obj: object, methods: Iterable[str] | None = None) -> None:
        """Serve ``obj`` as ``interface``.

        Args:
            methods: the names that may be called; None means the methods marked exposed.

        Raises:
            ValueError: a listed name is private or not a callable attribute of ``obj``.
        """
        if not _public(interface):
            raise ValueError(f"interface name must be a public name, not {interface!r}")
        if methods is None:
            allowed = exposed_names(obj)
        else:
            allowed = frozenset(methods)
            for name in allowed:
                if not _public(name):
                    raise ValueError(f"{interface}: {name!r} cannot be exposed (private name)")
                if not callable(getattr(obj, name, None)):
                    raise ValueError(f"{interface}: {name!r} is not a method of {obj!r}")
        self._objects[interface] = obj
        self._allowed[interface] = allowed

    def unregister(self, interface: str) -> None:
        self._objects.pop(interface, None)
        self._allowed.pop(interface, None)

    @property
    def interfaces(self) -> Mapping[str, frozenset[str]]:
        """Interface name -> callable method names."""
        return dict(self._allowed)

    def resolve(self, interface: str, method: str) -> Callable[..., Any]:
        """The bound method a call names.

        Raises:
            ValidationError: unknown interface, or a method that may not be called.
        """
        obj = self._objects.get(interface)
        if obj is None:
            raise ValidationError(
                f"unknown interface {interface!r}; this side serves {sorted(self._objects)}"
            )
        allowed = self._allowed[interface]
        if not _public(method) or method not in allowed:
            raise ValidationError(
                f"{interface}.{method} cannot be called remotely; callable methods: "
                f"{sorted(allowed)}"
            )
        func = getattr(obj, method, None)
        if not callable(func):
            raise ValidationError(f"{interface}.{method} is not a method")
        return func  # type: ignore[no-any-return]

    def spool(self, call: CallLike, part: bytearray, size: int) -> PartSink | None:
        """Where a large argument of an allowed call goes as it arrives (a spool hook).

        Asks the called object's ``spool_part(method, args, kwargs, part, size)``, if it has
        one; None (the bytes arrive in memory) otherwise, and for a call that is refused.
        """
        try:
            self.resolve(call.interface, call.method)
        except ValidationError:
            return None
        spool_part = getattr(self._objects[call.interface], "spool_part", None)
        if spool_part is None:
            return None
        sink: PartSink | None = spool_part(call.method, call.args, call.kwargs, part, size)
        return sink

    def is_quick(self, interface: str, method: str) -> bool:
        """True for an allowed method marked as never blocking (``@expose(quick=True)``)."""
        try:
            func = self.resolve(interface, method)
        except ValidationError:
            return True  # refused at once: nothing to wait for
        return getattr(func, QUICK_MARK, False) is True

    def dispatch(self, call: CallLike) -> Any:
        """Run the call and return its value; the method's exceptions propagate."""
        func = self.resolve(call.interface, call.method)
        return func(*call.args, **call.kwargs)

    def invoke(self, call: CallLike) -> Result | Error:
        """Run the call; its value as a Result, or any Exception it raised as an Error."""
        try:
            return Result(call.call_id, self.dispatch(call))
        except Exception as exc:
            return error_reply(call.call_id, exc)
