"""A lab's own interface class, served like the built-in ones (``--interface MODULE:CLASS``).

A lab that needs code on another computer (a stimulus PC's eye tracker, a second scanner
console) writes a class whose callable methods carry :func:`~rtcloud.interfaces.expose.expose`
and starts it in a service with ``rtcloud data-service ... --interface mylab.tracker:Tracker``;
the project server is started with the same option (it needs the class to know which methods
may be called) and scripts reach it with ``ClientInterface().interface("Tracker")``. The
rules are those of the built-in interfaces: only exposed methods can be called, never private
names, dunders or attributes, and arguments and results cross as plain values (never pickled).
See ``docs/custom-interfaces.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from rtcloud.errors import InvocationError
from rtcloud.interfaces.expose import exposed_methods

__all__ = ["load_interface_class"]


def load_interface_class(spec: str) -> type:
    """The class named by ``module.path:ClassName`` or ``path/to/file.py:ClassName``.

    Raises InvocationError (saying what to fix) for a bad spec, a module that cannot be
    imported, a missing class, or a class without any ``@expose`` method.
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise InvocationError(
            f"--interface {spec!r}: give MODULE:CLASS, e.g. mylab.tracker:Tracker or "
            "path/to/tracker.py:Tracker"
        )
    try:
        if where.endswith(".py"):
            path = os.path.abspath(os.path.expanduser(where))
            module_name = f"rtcloud_custom_{os.path.splitext(os.path.basename(path))[0]}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None or not os.path.isfile(path):
                raise ImportError(f"no Python file at {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except Exception as exc:  # the lab's module failed to import: say so, with its error
        raise InvocationError(f"--interface {spec!r}: cannot import {where}: {exc}") from exc
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise InvocationError(f"--interface {spec!r}: {where} has no class {name}")
    if not exposed_methods(cls):
        raise InvocationError(
            f"--interface {spec!r}: {name} has no method marked @expose, so nothing of it "
            "could be called (from rtcloud.interfaces.expose import expose)"
        )
    return cls
