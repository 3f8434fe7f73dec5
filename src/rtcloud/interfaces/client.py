"""ClientInterface: what an experiment script creates first, to reach every other interface.

With a project server running for this user on this computer, its interfaces come from the
server (over RPyC). With none, the script can still run on its own: after asking "continue
with local files?" (or at once with ``yesToPrompts=True``) it builds in-process interfaces
that read local folders, queue feedback and log plot points.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, cast

from rtcloud.errors import ServiceUnavailableError, StateError
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.interfaces.web import WebDisplayInterface
from rtcloud.lifeline import watch_server

__all__ = ["ClientInterface"]

logger = logging.getLogger(__name__)

_PROMPT = "No rtcloud project server is running. Continue with local files? (y/n) "


def _server_connection(rpyc_timeout: float) -> Any:
    """The connection to this user's running project server, or None when none runs."""
    from rtcloud.transport.discovery import connect_to_server

    return connect_to_server(rpyc_timeout)


class ClientInterface:
    """Entry point of an experiment script: ``dataInterface``, ``subjInterface``, ``webInterface``,
    ``bidsInterface``.

    Each interface has the methods, signatures and docstrings of its class
    (:class:`~rtcloud.interfaces.data.DataInterface`,
    :class:`~rtcloud.interfaces.subject.SubjectInterface`,
    :class:`~rtcloud.interfaces.web.WebDisplayInterface`,
    :class:`~rtcloud.interfaces.bids.BidsInterface`) whether it runs in this process or
    in the project server, so ``help(ci.dataInterface.getImageData)`` and an editor's
    completion work in every mode. Every method also takes ``rpc_timeout=SECONDS``.

    Args:
        rpyc_timeout: default timeout in seconds of calls to the project server.
        yesToPrompts: with no project server, use local interfaces without asking.
    """

    #: Scanner files: watch, stream and read volumes, get/put/list files.
    dataInterface: DataInterface
    #: Feedback to the participant and their responses.
    subjInterface: SubjectInterface
    #: The experimenter's web page: logs, plots, status.
    webInterface: WebDisplayInterface
    #: Streams of BIDS incrementals: from DICOMs, BIDS datasets and OpenNeuro.
    bidsInterface: BidsInterface

    def __init__(self, rpyc_timeout: float = 120, yesToPrompts: bool = False) -> None:
        self.rpyc_timeout = float(rpyc_timeout)
        self.rpcConn: Any = None
        self.exampleInterface: Any = None
        conn = _server_connection(self.rpyc_timeout)
        if conn is not None:
            watch_server()  # a script the server started ends when the server dies
            self.rpcConn = conn
            # Proxies with the local classes' methods and docs; typed as those classes.
            self.dataInterface = cast(
                DataInterface, conn.interface("DataInterface", DataInterface)
            )
            self.subjInterface = cast(
                SubjectInterface, conn.interface("SubjectInterface", SubjectInterface)
            )
            self.webInterface = cast(
                WebDisplayInterface, conn.interface("WebDisplayInterface", WebDisplayInterface)
            )
            self.bidsInterface = cast(
                BidsInterface, conn.interface("BidsInterface", BidsInterface)
            )
            _say_where(f"connected to the rtcloud project server {_describe(conn)}")
            return
        if not yesToPrompts:
            _ask_to_continue_locally()
        else:
            _say_where("no project server is running: using local files (in this process)")
        self.dataInterface = DataInterface(
            dataRemote=False, allowedDirs=["*"], allowedFileTypes=["*"]
        )
        self.subjInterface = SubjectInterface(subjectRemote=False)
        self.webInterface = WebDisplayInterface()
        self.bidsInterface = BidsInterface(allowedDirs=["*"])

    def interface(self, name: str) -> Any:
        """A lab's own interface served by the project server (``--interface``), by class name.

        Its exposed methods are called like the built-in interfaces' (see
        ``docs/custom-interfaces.md``). Without a server, make the object yourself.
        """
        if self.rpcConn is None:
            raise StateError(
                f"no project server is running, so it serves no {name}: create it in this "
                f"script instead (e.g. {name}())"
            )
        return self.rpcConn.interface(name)

    def isUsingProjectServer(self) -> bool:
        """True when the interfaces are the project server's, False for local ones."""
        return self.rpcConn is not None

    def isDataRemote(self) -> bool:
        """True when data calls go on to a remote data service (server run with --dataRemote)."""
        return bool(self.rpcConn is not None and self.rpcConn.is_remote("data"))

    def isSubjectRemote(self) -> bool:
        """True when feedback goes on to a remote subject service (--subjectRemote)."""
        return bool(self.rpcConn is not None and self.rpcConn.is_remote("subject"))

    def close(self) -> None:
        """Close the connection to the project server, or stop the local watchers."""
        if self.rpcConn is not None:
            self.rpcConn.close()
        elif isinstance(self.dataInterface, DataInterface):
            self.dataInterface.close()
            if isinstance(self.bidsInterface, BidsInterface):
                self.bidsInterface.close()


def _describe(conn: Any) -> str:
    """``http://127.0.0.1:8888/ (project sample)``, from what the server published."""
    url = getattr(conn, "url", None) or f"on 127.0.0.1 port {conn.port}"
    project = getattr(conn, "project", None)
    return f"{url} (project {project})" if project else str(url)


def _say_where(text: str) -> None:
    """Tell a script started by hand where its calls go (the server's own scripts know)."""
    from rtcloud.transport.discovery import ENV_VAR

    if os.environ.get(ENV_VAR):
        logger.info("%s", text)
        return
    print(f"rtcloud: {text}", file=sys.stderr, flush=True)


def _ask_to_continue_locally() -> None:
    """Ask on the terminal, or read the answer piped in (``echo y | python script.py``)."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        reply = ""
    elif stdin.isatty():
        reply = input(_PROMPT)
    else:
        print(_PROMPT, end="", flush=True)
        reply = stdin.readline()
        print(reply.strip(), flush=True)
    if not reply:
        raise StateError(
            "No rtcloud project server is running, and there is no terminal to ask whether "
            "to continue with local files (and no answer was piped in). Start the server "
            "(rtcloud serve -p PROJECT), answer with 'echo y | python SCRIPT', or pass "
            "yesToPrompts=True to ClientInterface (the sample's -y option) to use local files."
        )
    reply = reply.strip().lower()
    if reply not in ("y", "yes"):
        raise ServiceUnavailableError(
            "No rtcloud project server is running and local files were declined; start "
            "the server with: rtcloud serve -p PROJECT"
        )
