"""Running a remote service from the command line: password, TLS, reconnects, exit codes.

Shared by ``rtcloud data-service`` and ``rtcloud subject-service``. The password comes from
``--password-file``, the ``RTCLOUD_PASSWORD`` environment variable, or a prompt (never from
the command line, where other users could read it); a wrong password ends the service with
exit status 3 and a clear message.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from rtcloud.errors import AuthenticationError, InvocationError, ServiceReplacedError
from rtcloud.transport.ws_client import ServiceClient

__all__ = [
    "EXIT_AUTH",
    "EXIT_REPLACED",
    "add_connection_arguments",
    "read_password",
    "run_service",
]

logger = logging.getLogger(__name__)

EXIT_AUTH = 3
#: Exit status when another service of the same role took this one's place on the server.
EXIT_REPLACED = 4


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", "--server", default="localhost:8888", help="HOST:PORT of rtcloud serve"
    )
    parser.add_argument("-u", "--username", help="user name on the server (rtcloud add-user)")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="a file holding this user's password (else $RTCLOUD_PASSWORD, else a prompt)",
    )
    parser.add_argument(
        "-p",
        "--password",
        help="the password itself, as RT-Cloud's scripts passed it (visible to other users of "
        "this computer in the process list: prefer --password-file or $RTCLOUD_PASSWORD)",
    )
    parser.add_argument(
        "-i",
        "--interval",
        type=float,
        help="accepted for RT-Cloud's command lines and not needed: a dropped link is retried "
        "at once, then with a growing pause up to 5 s",
    )
    parser.add_argument("--test", action="store_true", help="log in as test/test (server --test)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (https/wss)")
    parser.add_argument("--fingerprint", help="SHA-256 fingerprint of the server's certificate")
    parser.add_argument("--cafile", help="CA or certificate file to trust")


def read_password(args: argparse.Namespace) -> tuple[str, str]:
    """(user, password) from --test, the password file, $RTCLOUD_PASSWORD or a prompt."""
    if args.test:
        return "test", "test"
    if not args.username:
        raise InvocationError("give the user name with -u (users are added with rtcloud add-user)")
    if getattr(args, "password", None):
        logger.warning(
            "a password given with -p can be read by other users of this computer in the "
            "process list: prefer --password-file or $RTCLOUD_PASSWORD"
        )
        return args.username, str(args.password)
    if args.password_file is not None:
        try:
            return args.username, args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvocationError(f"cannot read the password file: {exc}") from exc
    env = os.environ.get("RTCLOUD_PASSWORD")
    if env:
        return args.username, env
    if not sys.stdin or not sys.stdin.isatty():
        raise InvocationError(
            "no password: use --password-file, set RTCLOUD_PASSWORD, or run in a terminal"
        )
    return args.username, getpass.getpass(f"Password for {args.username}@{args.server}: ")


def run_service(
    args: argparse.Namespace, role: str, objects: dict[str, object], instance: str = ""
) -> int:
    """Serve ``objects`` to the server until Ctrl-C; the process exit status.

    ``instance`` tells this service apart from others of its role run by the same user on
    the same computer, and stays the same when it restarts."""
    user, password = read_password(args)
    client = ServiceClient(
        args.server,
        role,
        objects,
        username=user,
        password=password,
        tls=args.tls,
        fingerprint=args.fingerprint,
        cafile=args.cafile,
        on_status=lambda text: logger.info("%s service: %s", role, text),
        instance=instance,
    )
    try:
        client.run_forever()
    except AuthenticationError as exc:
        print(f"rtcloud {role}-service: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except ServiceReplacedError as exc:
        print(f"rtcloud {role}-service: {exc}", file=sys.stderr)
        return EXIT_REPLACED
    except KeyboardInterrupt:
        client.stop()
    return 0
