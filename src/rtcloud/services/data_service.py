"""``rtcloud data-service``: the scanner-side process that serves DataInterface remotely.

It runs next to the folder the scanner writes into, dials out to the project server and
answers its calls inside the allowed directories and file types (``-d``, ``-f``; defaults as
RT-Cloud: ``/tmp,/data,/var`` and ``.dcm,.mat,.txt``). Streams opened with ``anonymize``
are anonymized here, before any byte leaves this computer.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from rtcloud.interfaces.data import DataInterface
from rtcloud.services.runner import add_connection_arguments, run_service

__all__ = ["add_parser", "build_interfaces"]

DEFAULT_DIRS = ",".join(dict.fromkeys(["/tmp", "/data", "/var", tempfile.gettempdir()]))
DEFAULT_TYPES = ".dcm,.mat,.txt"


def build_interfaces(dirs: str, types: str, clock_skew: float = 0.0) -> dict[str, object]:
    allowed_dirs = [d.strip() for d in dirs.split(",") if d.strip()]
    allowed_types = [t.strip() for t in types.split(",") if t.strip()]
    return {
        "DataInterface": DataInterface(
            allowedDirs=allowed_dirs,
            allowedFileTypes=allowed_types,
            scannerClockSkew=clock_skew,
        )
    }


def _run(args: argparse.Namespace) -> int:
    return run_service(
        args, "data", build_interfaces(args.dirs, args.filetypes, args.scannerClockSkew)
    )


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "data-service",
        help="serve scanner files to a remote project server",
        description="Run on the scanner computer, next to the folder the scanner writes into: "
        "dial out to a server started with --dataRemote (or --remote) and serve its scripts' "
        "data calls (watch and stream volumes, get, put and list files) inside the allowed "
        "folders and file types only. Streamed volumes are anonymized here, before any byte "
        "leaves this computer.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "-d",
        "--dirs",
        default=DEFAULT_DIRS,
        help="allowed folders, comma separated: files elsewhere are refused",
    )
    parser.add_argument(
        "-f", "--filetypes", default=DEFAULT_TYPES, help="allowed file extensions, comma separated"
    )
    parser.add_argument(
        "--scannerClockSkew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds the scanner's clock is ahead of this computer's",
    )
    parser.set_defaults(func=_run)
