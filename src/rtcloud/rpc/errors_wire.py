"""Errors across process boundaries: an exception to a plain record and back.

The record holds the type name, the message and the remote traceback text. On the receiving
side a type on the allow-list is re-raised as itself (so ``except ValidationError`` or
``except FileNotFoundError`` work whatever the mode); any other type becomes
:class:`~rtcloud.errors.RemoteCallError` carrying the remote type name and traceback. No
class is ever looked up by a name the peer chose outside the allow-list.

Pure module: no sockets, threads or clocks.
"""

from __future__ import annotations

import queue
import traceback
from typing import Any

from rtcloud import errors as _errors
from rtcloud.errors import RemoteCallError

__all__ = ["ALLOWED_ERRORS", "error_to_message", "message_to_exception"]


def _allowed() -> dict[str, type[BaseException]]:
    table: dict[str, type[BaseException]] = {}
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            table[cls.__name__] = cls
    for cls in (
        TimeoutError, FileNotFoundError, FileExistsError, IsADirectoryError,
        NotADirectoryError, PermissionError, ValueError, TypeError, KeyError, IndexError,
        NotImplementedError, RuntimeError, OSError, ConnectionError, AttributeError,
        ZeroDivisionError, ArithmeticError, LookupError,
    ):
        table[cls.__name__] = cls
    table["Empty"] = queue.Empty
    return table


ALLOWED_ERRORS = _allowed()

#: Fields of our errors that travel with them.
_FIELDS = ("path", "field", "errors", "waited", "remote_type", "remote_traceback")


def error_to_message(exc: BaseException) -> dict[str, Any]:
    """A plain record of an exception, safe to encode."""
    record: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc) if not isinstance(exc, KeyError) else (str(exc.args[0]) if exc.args else ""),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }
    fields = {}
    for name in _FIELDS:
        value = getattr(exc, name, None)
        if isinstance(value, (str, int, float, dict)) and value not in ("", None):
            fields[name] = value
    if fields:
        record["fields"] = fields
    return record


def message_to_exception(record: dict[str, Any]) -> BaseException:
    """The exception a record describes: its own type if allowed, else RemoteCallError."""
    name = str(record.get("type", "Exception"))
    message = str(record.get("message", ""))
    trace = str(record.get("traceback", ""))
    cls = ALLOWED_ERRORS.get(name)
    if cls is None:
        return RemoteCallError(f"{name}: {message}", remote_type=name, remote_traceback=trace)
    fields = record.get("fields") if isinstance(record.get("fields"), dict) else {}
    try:
        exc = cls(message)
    except TypeError:
        exc = cls.__new__(cls)
        exc.args = (message,)
    for key, value in (fields or {}).items():
        if key in _FIELDS:
            try:
                setattr(exc, key, value)
            except AttributeError:
                pass
    exc.__notes__ = [f"raised remotely:\n{trace}"] if trace else []  # type: ignore[attr-defined]
    return exc
