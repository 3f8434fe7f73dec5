"""RT-Cloud names: ``WsRemoteService`` and ``parseConnectionArgs``, for programs that serve
an interface to the project server themselves (a PsychoPy script holding the participant's
SubjectInterface, say), as RT-Cloud's examples do.

The link is rtcloud's (:class:`~rtcloud.transport.ws_client.ServiceClient`): it logs in,
reconnects when the link drops, and refuses to send a password in clear to another computer
(pass ``--tls``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from rtcloud.services.runner import read_password
from rtcloud.transport.ws_client import ServiceClient

__all__ = ["WsRemoteService", "parseConnectionArgs"]

logger = logging.getLogger(__name__)

#: RT-Cloud's channel names and the service roles they are here.
_ROLES = {"wsData": "data", "wsSubject": "subject"}


def parseConnectionArgs(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The connection options of a service program, from ``argv`` (default: the command
    line; options it does not know are left for the program, as RT-Cloud's did).

    ``-s/--server HOST:PORT``, ``-u/--username``, ``-p/--password`` (visible to other users
    of this computer: prefer ``--password-file`` or ``$RTCLOUD_PASSWORD``), ``--test``
    (test/test), ``-i/--interval`` (accepted; reconnects back off by themselves), ``--tls``,
    ``--fingerprint``, ``--cafile``.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-s", "--server", default="localhost:8888")
    parser.add_argument("-i", "--interval", type=int, default=5)
    parser.add_argument("-u", "--username")
    parser.add_argument("-p", "--password")
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--test", action="store_true")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--fingerprint")
    parser.add_argument("--cafile")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    return args


class WsRemoteService:
    """Serve interfaces (registered by class name) to the project server over ``channelName``
    (``"wsData"`` or ``"wsSubject"``)."""

    def __init__(self, args: argparse.Namespace, channelName: str) -> None:
        if channelName not in _ROLES:
            raise ValueError(f"unknown channel {channelName!r}; use one of {sorted(_ROLES)}")
        self.args = args
        self.role = _ROLES[channelName]
        self._objects: dict[str, object] = {}
        self._client: ServiceClient | None = None
        self._thread: threading.Thread | None = None

    def addHandlerClass(self, classType: type, instance: object) -> None:
        self.addHandlerClassName(classType.__name__, instance)

    def addHandlerClassName(self, className: str, instance: object) -> None:
        self._objects[className] = instance

    def _connect(self) -> ServiceClient:
        if self._client is None:
            args = self.args
            if getattr(args, "password", None) and not getattr(args, "test", False):
                if not args.username:
                    raise ValueError("give the user name with -u along with -p")
                user, password = args.username, args.password
            else:
                user, password = read_password(args)
            self._client = ServiceClient(
                args.server,
                self.role,
                dict(self._objects),
                username=user,
                password=password,
                tls=bool(getattr(args, "tls", False)),
                fingerprint=getattr(args, "fingerprint", None),
                cafile=getattr(args, "cafile", None),
                on_status=lambda text: logger.info("%s service: %s", self.role, text),
            )
        return self._client

    def runForever(self) -> None:
        """Serve until :meth:`stop` (reconnecting when the link drops)."""
        self._connect().run_forever()

    def runDetached(self) -> threading.Thread:
        """Serve from a background (daemon) thread; return it."""
        client = self._connect()
        self._thread = threading.Thread(
            target=client.run_forever, name=f"rtcloud-{self.role}-service", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        if self._client is not None:
            self._client.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def started(self) -> bool:
        """Whether the service has connected to the server."""
        return self._client is not None and self._client.connected.is_set()
