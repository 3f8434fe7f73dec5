"""The hub: where every call from an experiment script is routed.

Each interface name (``DataInterface``, ``SubjectInterface``, ``WebDisplayInterface``) maps
to a *target*: an object inside the server (local mode) or a channel to a remote service
(``--dataRemote`` / ``--subjectRemote``). Only methods marked with ``@expose`` can be called;
a ``timeout`` argument of the method (how long it may wait for a file) sets the call's
deadline (that wait plus a margin), so long waits need no ``rpc_timeout`` and short ones
end in time even when a service hangs.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rtcloud.errors import ServiceUnavailableError, ValidationError
from rtcloud.interfaces.expose import exposed_methods

__all__ = ["Hub", "InterfaceInfo", "RemoteTarget", "timeout_parameter"]

logger = logging.getLogger(__name__)

#: Seconds added to a method's own wait (its ``timeout`` argument) for the answer to travel:
#: ``getImageData(s, i, timeout=5)`` ends within 7 s even when its service hangs.
DEADLINE_MARGIN = 2.0


class RemoteTarget(Protocol):
    """A channel to a remote service that serves one or more interfaces."""

    @property
    def connected(self) -> bool: ...

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
        raw: bool = False,
    ) -> Any: ...


@dataclass(frozen=True)
class InterfaceInfo:
    """What a client needs to know about one interface."""

    name: str
    methods: dict[str, int | None]  # method -> index of its ``timeout`` parameter (or None)
    remote: bool
    service_hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "methods": self.methods, "remote": self.remote}


def timeout_parameter(func: Callable[..., Any]) -> int | None:
    """Position (after self) of a method's parameter named ``timeout``, or None."""
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None
    if params and params[0] == "self":
        params = params[1:]
    return params.index("timeout") if "timeout" in params else None


def method_wait(
    info: InterfaceInfo, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> float:
    """The seconds a call asks the method itself to wait (its ``timeout`` argument), or 0."""
    index = info.methods.get(method)
    value: Any = kwargs.get("timeout")
    if value is None and index is not None and len(args) > index:
        value = args[index]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 0.0


class Hub:
    """Routes ``(interface, method, args, kwargs)`` to the object or service that serves it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, object] = {}
        self._remote: dict[str, RemoteTarget] = {}
        self._info: dict[str, InterfaceInfo] = {}
        self.default_remote_timeout = 60.0
        #: Called after each successful call of a method named in :attr:`observed` with
        #: (interface, method, args, kwargs, started, finished), times from ``time.time()``.
        self.observer: Callable[[str, str, tuple[Any, ...], dict[str, Any], float, float], None]
        self.observer = _no_observer
        self.observed: frozenset[tuple[str, str]] = frozenset()

    def register_local(self, name: str, obj: object) -> None:
        methods = {m: timeout_parameter(getattr(obj, m)) for m in exposed_methods(type(obj))}
        with self._lock:
            self._local[name] = obj
            self._remote.pop(name, None)
            self._info[name] = InterfaceInfo(name, methods, remote=False)

    def register_remote(
        self,
        name: str,
        cls: type,
        target: RemoteTarget,
        service_hint: str,
        *,
        remote: bool = True,
    ) -> None:
        """Serve ``name`` through ``target``; ``cls`` gives the allowed methods.

        ``remote`` is what scripts are told (``isRunningRemote()``): False for a target that
        answers in the server and only optionally involves other processes.
        """
        methods = {m: timeout_parameter(getattr(cls, m)) for m in exposed_methods(cls)}
        with self._lock:
            self._remote[name] = target
            self._local.pop(name, None)
            self._info[name] = InterfaceInfo(
                name, methods, remote=remote, service_hint=service_hint
            )

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [info.as_dict() for info in self._info.values()]

    def info(self, interface: str) -> InterfaceInfo:
        try:
            return self._info[interface]
        except KeyError:
            raise ValidationError(
                f"unknown interface {interface!r}; this server serves {sorted(self._info)}"
            ) from None

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
        *,
        raw: bool = False,
    ) -> Any:
        """Call ``interface.method(*args, **kwargs)`` where it is served; return its result.

        ``timeout`` (seconds) bounds the remote hop; None means the method's own wait (its
        ``timeout`` argument) plus :data:`DEADLINE_MARGIN`, or for a method that does not
        wait the default. With ``raw``, a remote service's
        result may come back still encoded (:class:`~rtcloud.rpc.codec.Encoded`), for a
        caller that only passes it on.
        """
        info = self.info(interface)
        if method not in info.methods:
            raise ValidationError(
                f"{interface}.{method} cannot be called remotely; callable methods: "
                f"{sorted(info.methods)}"
            )
        kwargs = dict(kwargs)
        kwargs.pop("rpc_timeout", None)
        if (interface, method) in self.observed:
            started = time.time()
            result = self._call(info, interface, method, args, kwargs, timeout, raw)
            arrived = getattr(result, "add_done_callback", None)
            if arrived is None:
                self.observer(interface, method, args, kwargs, started, time.time())
            else:  # a result passed on while it arrives: observed once it is all here

                def observe(error: Exception | None) -> None:
                    if error is None:
                        self.observer(interface, method, args, kwargs, started, time.time())

                arrived(observe)
            return result
        return self._call(info, interface, method, args, kwargs, timeout, raw)

    def _call(
        self,
        info: InterfaceInfo,
        interface: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        raw: bool,
    ) -> Any:
        local = self._local.get(interface)
        if local is not None:
            return getattr(local, method)(*args, **kwargs)
        target = self._remote.get(interface)
        # a data service that was connected and dropped its link is waited for by the
        # calls that may be made again (see DataStreams); a role never connected fails now
        if target is None or not (target.connected or getattr(target, "reconnecting", False)):
            raise ServiceUnavailableError(
                f"{interface}.{method}: no {info.service_hint or 'remote service'} is connected; "
                f"start it, e.g. rtcloud {_service_command(interface)} -s HOST:PORT"
            )
        if timeout is None:
            wait = method_wait(info, method, args, kwargs)
            timeout = wait + DEADLINE_MARGIN if wait > 0 else self.default_remote_timeout
        return target.call(interface, method, args, kwargs, timeout, raw=raw)


def _no_observer(*args: Any) -> None:
    pass


def _service_command(interface: str) -> str:
    return "subject-service" if interface == "SubjectInterface" else "data-service"
