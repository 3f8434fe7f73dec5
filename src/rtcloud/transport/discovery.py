"""Finding the project server a script should talk to.

A running ``rtcloud serve`` publishes how to reach its RPyC port (address and secret):

- to the scripts it starts, in their environment (``RTCLOUD_SERVER``, the connection info
  as JSON): such a script reaches the server that started it and no other, or fails saying
  that server is gone;
- to scripts started by hand, in a file of its own under ``~/.rtcloud/servers/`` that only
  its OS user can read (or at ``$RTCLOUD_SERVER_INFO`` when that is set). With one server
  running, a script finds it; with several, it stops with a message listing them and how to
  choose one (``RTCLOUD_SERVER_INFO=FILE``); with none, this module answers None and
  ClientInterface falls back to local interfaces. Files of servers that are gone (killed
  without a chance to remove theirs) are skipped and removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rtcloud.errors import InvocationError, ServiceUnavailableError

__all__ = [
    "ADDRESS_VAR",
    "ENV_VAR",
    "connect_to_server",
    "server_info_path",
    "servers_dir",
]

#: Path of a connection file: where a server writes it, and which one a script uses.
ENV_VAR = "RTCLOUD_SERVER_INFO"
#: The connection info (JSON) a server gives the scripts it starts.
ADDRESS_VAR = "RTCLOUD_SERVER"


def servers_dir() -> Path:
    """The folder where each running server of this OS user keeps its connection file."""
    return Path.home() / ".rtcloud" / "servers"


def server_info_path() -> Path | None:
    """The connection file chosen with ``$RTCLOUD_SERVER_INFO``, else None."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict[str, Any]) -> str:
    project = info.get("project", "?")
    return f"project {project!r} at {info.get('url', '?')} (pid {info.get('pid', '?')})"


def connect_to_server(rpyc_timeout: float) -> Any:
    """A connection to the server this script belongs to, or None when none is running.

    Raises:
        ServiceUnavailableError: the server that started this script no longer answers.
        InvocationError: started by hand while several servers run: the message lists them.
    """
    from rtcloud.transport.rpyc_client import connect_from_info

    given = os.environ.get(ADDRESS_VAR)
    if given:
        try:
            info = json.loads(given)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise ServiceUnavailableError(f"${ADDRESS_VAR} is not valid connection info")
        conn = connect_from_info(info, rpyc_timeout)
        if conn is None:
            raise ServiceUnavailableError(
                f"this script was started by the rtcloud server of {_describe(info)}, which "
                "no longer answers; start the run again from that server's page"
            )
        return conn
    chosen = server_info_path()
    if chosen is not None:
        info = _read(chosen)
        return None if info is None else connect_from_info(info, rpyc_timeout)
    live: list[tuple[Path, dict[str, Any], Any]] = []
    for path in sorted(servers_dir().glob("*.json")):
        info = _read(path)
        if info is None:
            continue
        try:
            conn = connect_from_info(info, rpyc_timeout, refused_is_gone=True)
        except ConnectionRefusedError:  # nothing listens there any more: a server long gone
            path.unlink(missing_ok=True)
            continue
        if conn is not None:
            live.append((path, info, conn))
    if len(live) <= 1:
        return live[0][2] if live else None
    for _, _, conn in live:
        conn.close()
    listing = "\n".join(f"  {_describe(info)}: {path}" for path, info, _ in live)
    raise InvocationError(
        f"{len(live)} rtcloud servers are running for this user; choose one by starting the "
        f"script with {ENV_VAR} set to its file, e.g. {ENV_VAR}={live[0][0]}, or start the "
        f"script from a server's page:\n{listing}"
    )
