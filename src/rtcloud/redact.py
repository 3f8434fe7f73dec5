"""Keeping secrets out of logs, whoever writes the log line.

rtcloud's own code never logs a password, token, session or secret. Libraries it runs on
may, at DEBUG level: websockets logs every handshake header (``Authorization``, ``Cookie``),
uvicorn can log requests with their query strings. :class:`RedactSecrets` is a logging
filter that masks such values in any record before it is written; ``rtcloud`` commands put
it on their log handlers (``-v`` shows DEBUG lines, without secrets), and the services'
WebSocket client logs its handshake through a logger that has it.

Masked: ``Bearer``/``Basic`` credentials, the values of rtcloud's cookies, and
``token=``, ``password=`` and ``secret=`` values (query strings, forms, key=value text).
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "RedactSecrets", "redact"]

MASK = "[redacted]"

_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{MASK}"),
    (re.compile(r"(rtcloud_[a-z]+=)[^;,\s'\"&]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(token|password|passwd|secret)=[^&;,\s'\"]+"), rf"\1={MASK}"),
]


def redact(text: str) -> str:
    """``text`` with every credential masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """A logging filter that masks credentials in a record's message (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
