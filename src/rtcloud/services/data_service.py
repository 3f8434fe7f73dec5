"""``rtcloud data-service``: the scanner-side process that serves DataInterface remotely.

It runs next to the folder the scanner writes into, dials out to the project server and
answers its calls inside the allowed directories and file types (``-d``, ``-f``; defaults as
RT-Cloud: ``/tmp,/data,/var`` and ``.dcm,.mat,.txt``). Every DICOM it hands out (streams,
``getFile``, ``watchFile``) is anonymized here, before any byte leaves this computer, unless it
is started with ``--send-identifying-dicom``.

With ``--dicom-listen HOST:PORT`` it is also a DICOM node that the scanner pushes images to
(C-STORE, :mod:`rtcloud.watcher.cstore`): each image is written into ``--dicom-dir`` (inside
the allowed folders) as the scanner's real-time export would write it, and streams on that
folder deliver it like any exported file.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from rtcloud.errors import InvocationError, ValidationError
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.services.runner import add_connection_arguments, run_service
from rtcloud.watcher.cstore import DEFAULT_AE_TITLE, DicomReceiver

__all__ = ["add_parser", "build_interfaces"]

DEFAULT_DIRS = ",".join(dict.fromkeys(["/tmp", "/data", "/var", tempfile.gettempdir()]))
DEFAULT_TYPES = ".dcm,.mat,.txt"


def build_interfaces(
    dirs: str, types: str, clock_skew: float = 0.0, *, send_identifying: bool = False
) -> dict[str, object]:
    """The interfaces a data service serves. Unless ``send_identifying``, every DICOM they
    hand out is anonymized here, files (``getFile``, ``watchFile``) as well as streams."""
    allowed_dirs = [d.strip() for d in dirs.split(",") if d.strip()]
    allowed_types = [t.strip() for t in types.split(",") if t.strip()]
    return {
        "DataInterface": DataInterface(
            allowedDirs=allowed_dirs,
            allowedFileTypes=allowed_types,
            scannerClockSkew=clock_skew,
            sendIdentifying=send_identifying,
        ),
        # DICOMs become anonymized BIDS incrementals here, before they leave this computer
        "BidsInterface": BidsInterface(
            allowedDirs=allowed_dirs, scannerClockSkew=clock_skew, sendIdentifying=send_identifying
        ),
    }


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise InvocationError(
            f"--dicom-listen {text!r}: give HOST:PORT, e.g. 0.0.0.0:11112 (the address and "
            "port the scanner's DICOM node sends to; port 0 picks a free one)"
        )
    return (host.strip("[]") or "127.0.0.1", int(port))


def _dicom_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.dicom_tls_cert is None and args.dicom_tls_key is None:
        return None
    if args.dicom_tls_cert is None or args.dicom_tls_key is None:
        raise InvocationError("give both --dicom-tls-cert and --dicom-tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.dicom_tls_cert, args.dicom_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise InvocationError(f"cannot load the DICOM TLS certificate or key: {exc}") from exc
    return context


def build_receiver(args: argparse.Namespace, data: DataInterface) -> DicomReceiver | None:
    """The DICOM node of ``--dicom-listen`` (None without it), not yet started."""
    if not args.dicom_listen:
        return None
    host, port = _listen_address(args.dicom_listen)
    folder = Path(
        os.path.expanduser(args.dicom_dir or Path(tempfile.gettempdir()) / "rtcloud-dicom")
    )
    try:
        folder = data._resolve(folder.absolute(), "DICOM receive folder (--dicom-dir)")
        data._check_type(folder / "image.dcm")
        folder.mkdir(parents=True, exist_ok=True)
    except ValidationError as exc:
        raise InvocationError(str(exc)) from exc
    except OSError as exc:
        raise InvocationError(f"cannot create the DICOM receive folder {folder}: {exc}") from exc
    calling = [t for t in (args.calling_ae or "").split(",") if t.strip()]
    try:
        return DicomReceiver(
            folder,
            host=host,
            port=port,
            ae_title=args.ae_title,
            calling_ae_titles=calling,
            ssl_context=_dicom_tls(args),
            insecure=args.dicom_insecure,
        )
    except ValidationError as exc:
        raise InvocationError(str(exc)) from exc


def _run(args: argparse.Namespace) -> int:
    from rtcloud.interfaces.custom import load_interface_class

    objects = build_interfaces(
        args.dirs,
        args.filetypes,
        args.scannerClockSkew,
        send_identifying=args.send_identifying_dicom,
    )
    for spec in args.interface or ():
        cls = load_interface_class(spec)
        objects[cls.__name__] = cls()
    data = objects["DataInterface"]
    assert isinstance(data, DataInterface)
    receiver = build_receiver(args, data)
    if receiver is not None:
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # a line per message
        try:
            receiver.start()
        except OSError as exc:
            raise InvocationError(f"cannot listen on {args.dicom_listen}: {exc}") from exc
    try:
        return run_service(args, "data", objects)
    finally:
        if receiver is not None:
            receiver.stop()


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "data-service",
        help="serve scanner files to a remote project server",
        description="Run on the scanner computer, next to the folder the scanner writes into: "
        "dial out to a server started with --dataRemote (or --remote) and serve its scripts' "
        "data calls (watch and stream volumes, get, put and list files) inside the allowed "
        "folders and file types only. Every DICOM is anonymized here, before any byte "
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
    parser.add_argument(
        "--send-identifying-dicom",
        action="store_true",
        help="send DICOM files and images as they are, names and dates included (by default "
        "every DICOM is anonymized here: streams, getFile, watchFile, getNewestFile)",
    )
    parser.add_argument(
        "--interface",
        action="append",
        metavar="MODULE:CLASS",
        help="also serve a lab's own interface class (its @expose methods); start the server "
        "with the same option (docs/custom-interfaces.md)",
    )
    dicom = parser.add_argument_group(
        "DICOM push (C-STORE)", "receive the images the scanner sends to a DICOM node"
    )
    dicom.add_argument(
        "--dicom-listen",
        metavar="HOST:PORT",
        help="listen for DICOM C-STORE on this address (e.g. 0.0.0.0:11112)",
    )
    dicom.add_argument(
        "--ae-title",
        default=DEFAULT_AE_TITLE,
        help=f"this node's AE title, as entered on the scanner (default {DEFAULT_AE_TITLE})",
    )
    dicom.add_argument(
        "--dicom-dir",
        help="folder for received images, inside the allowed folders "
        "(default: rtcloud-dicom in the temporary folder)",
    )
    dicom.add_argument(
        "--calling-ae",
        metavar="AET[,AET...]",
        help="accept only these calling AE titles (the scanner's); default: any",
    )
    dicom.add_argument("--dicom-tls-cert", type=Path, help="TLS certificate (PEM) for DICOM")
    dicom.add_argument("--dicom-tls-key", type=Path, help="TLS private key (PEM) for DICOM")
    dicom.add_argument(
        "--dicom-insecure",
        action="store_true",
        help="allow receiving DICOM beyond 127.0.0.1 without TLS (most scanners send so)",
    )
    parser.set_defaults(func=_run)
