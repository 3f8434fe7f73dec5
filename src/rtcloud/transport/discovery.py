"""Finding the project server a script should talk to.

A running ``rtcloud serve`` publishes how to reach its RPyC port (address and secret) in an
environment variable for the scripts it starts, and in a file only its OS user can read for
scripts started by hand. Until a server is found this module answers None, and
ClientInterface falls back to local interfaces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["ENV_VAR", "connect_to_server", "server_info_path"]

#: Environment variable holding the path of the server's connection file.
ENV_VAR = "RTCLOUD_SERVER_INFO"


def server_info_path() -> Path:
    """Where a server started by this OS user writes its connection file."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path.home() / ".rtcloud" / "server.json"


def connect_to_server(rpyc_timeout: float) -> Any:
    """A connection to this user's running project server, or None when none is running."""
    path = server_info_path()
    if not path.is_file():
        return None
    from rtcloud.transport.rpyc_client import connect_from_info_file

    return connect_from_info_file(path, rpyc_timeout)
