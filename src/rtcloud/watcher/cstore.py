"""DICOM push: a storage node (C-STORE SCP) that takes the images a scanner sends.

Many sites cannot export a scanner's images to a shared folder but can send them over DICOM
networking, to the console's "send to" node or a real-time export node. :class:`DicomReceiver`
is such a node (pynetdicom underneath): it accepts C-STORE associations addressed to its AE
title (from calling AE titles on an allow list, when one is given), in every storage SOP
class and transfer syntax pynetdicom knows, compressed ones included.

Each image received is complete (the association carries it whole; it is also parsed before
it is acknowledged) and is written atomically into the receive folder, so that to everything
else on this computer it is a file that appeared whole at once: image streams
(``initScannerStream``), ``getFile``/``listFiles``, and archiving see it as they see the
files a scanner exports. Files are named as Siemens' real-time export names them,
``001_{SeriesNumber:06d}_{InstanceNumber:06d}.dcm`` (series 13, instance 5:
``001_000013_000005.dcm``), so a project written for that export runs unchanged with
``imgDir`` set to the receive folder; another pattern of integer DICOM attributes may be
given. An image that lacks them is named by a hash of its SOP instance UID. The file holds
the bytes as sent (the data set in the transfer syntax the association agreed on, after
pynetdicom's file meta): like an exported file, it stays on this computer as it came, and
streams anonymize what leaves it.

``on_image`` is called (in the association's thread, after the file is in place) with each
:class:`ReceivedImage`: the file's path, bytes, parsed dataset, the calling AE title and the
time the image had arrived.

Listening beyond 127.0.0.1 needs TLS (``ssl_context``) or an explicit ``insecure=True``,
which is logged loudly: most scanner consoles send DICOM without TLS, inside the hospital
network. Nothing here is POSIX-only: pynetdicom's server runs each association in a thread
on Linux, macOS and Windows alike.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import ssl
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from rtcloud.atomic_files import write_atomically
from rtcloud.errors import InvocationError, ValidationError
from rtcloud.imaging.dicom_read import read_dicom_fast
from rtcloud.server.config import is_loopback

__all__ = [
    "DEFAULT_AE_TITLE",
    "DEFAULT_NAME_PATTERN",
    "DicomReceiver",
    "ReceivedImage",
    "check_ae_title",
    "file_name_for",
]

logger = logging.getLogger(__name__)

DEFAULT_AE_TITLE = "RTCLOUD"
#: How Siemens' real-time export names its files (RT-Cloud's ``dicomNamePattern``).
DEFAULT_NAME_PATTERN = "001_{SeriesNumber:06d}_{InstanceNumber:06d}.dcm"

#: C-STORE status codes (PS3.4 Annex B.2.3).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # printable ASCII but backslash
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` stripped, or ValidationError: 1-16 printable ASCII characters, no backslash."""
    text = str(title).strip()
    if not _AE_TITLE.fullmatch(text):
        raise ValidationError(
            f"{what} {title!r} is not a DICOM AE title: use 1 to 16 printable ASCII "
            "characters without a backslash, e.g. RTCLOUD"
        )
    return text


def _pattern_fields(pattern: str) -> list[str]:
    """The DICOM keywords a file name pattern names (ValidationError if it is not one)."""
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValidationError(f"file name pattern {pattern!r}: {exc}") from exc
    fields = [name for _, name, _, _ in parsed if name is not None]
    bad = [name for name in fields if not _FIELD.match(name)]
    if bad or not fields:
        raise ValidationError(
            f"file name pattern {pattern!r} must name DICOM attributes by keyword, e.g. "
            f"{DEFAULT_NAME_PATTERN!r}"
        )
    if os.path.basename(pattern) != pattern or pattern.startswith("."):
        raise ValidationError(f"file name pattern {pattern!r} must be a plain file name")
    return fields


def file_name_for(ds: Dataset, pattern: str = DEFAULT_NAME_PATTERN) -> str:
    """The file name of a received image: ``pattern`` filled from its integer attributes.

    When one of them is missing or not an integer, ``sop-<hash of the SOP instance
    UID>.dcm`` (the UID itself embeds the scanner's serial number and a date).
    """
    values: dict[str, int] = {}
    for keyword in _pattern_fields(pattern):
        try:
            value = ds.get(keyword)
            if value is None or value == "":
                raise ValueError(keyword)
            values[keyword] = int(value)
        except (TypeError, ValueError):
            break
    else:
        try:
            return pattern.format(**values)
        except (ValueError, IndexError, KeyError):
            pass
    uid = str(ds.get("SOPInstanceUID", "") or "")
    digest = hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:20]
    return f"sop-{digest}.dcm"


@dataclass(frozen=True)
class ReceivedImage:
    """One image a scanner pushed, as written into the receive folder.

    ``data`` is the file's content and ``dataset`` its parse (a fresh object: hand it out
    once); ``received`` is ``time.time()`` when the whole image had arrived.
    """

    path: Path
    data: bytes
    dataset: Dataset
    calling_ae: str
    received: float


def _parse(data: bytes) -> Dataset:
    """The dataset of a received file: the fast reader, else dcmread (which may raise)."""
    fast = read_dicom_fast(data)
    if fast is not None:
        return fast
    return pydicom.dcmread(io.BytesIO(data))


class DicomReceiver:
    """A DICOM storage node that writes each image it receives into ``folder``.

    Args:
        folder: where received images are written (must exist).
        host, port: where to listen (port 0: any free port; see :attr:`address`).
        ae_title: this node's AE title; associations addressed to another are rejected.
        calling_ae_titles: when not empty, the only calling AE titles accepted (the
            scanner's); any other association is rejected.
        name_pattern: file names, from integer DICOM attributes (see :func:`file_name_for`).
        ssl_context: TLS for the associations (a server context with its certificate).
        insecure: allow listening beyond 127.0.0.1 without TLS (logged as a warning).
        on_image: called with each :class:`ReceivedImage` once its file is in place.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ae_title: str = DEFAULT_AE_TITLE,
        calling_ae_titles: Iterable[str] = (),
        name_pattern: str = DEFAULT_NAME_PATTERN,
        ssl_context: ssl.SSLContext | None = None,
        insecure: bool = False,
        on_image: Callable[[ReceivedImage], None] | None = None,
    ) -> None:
        path = Path(folder)
        if not path.is_dir():
            raise ValidationError(
                f"DICOM receive folder {os.fspath(folder)!r} does not exist; create it first"
            )
        if not (0 <= int(port) <= 65535):
            raise ValidationError(f"DICOM port {port!r} is not a TCP port (0-65535)")
        if not is_loopback(host) and ssl_context is None and not insecure:
            raise InvocationError(
                f"refusing to receive DICOM on {host} without TLS: give a certificate "
                "(--dicom-tls-cert/--dicom-tls-key), or --dicom-insecure if the scanner "
                "cannot send with TLS (the images then cross the network unencrypted)"
            )
        _pattern_fields(name_pattern)
        self.folder = Path(os.path.realpath(path))
        self.host = host
        self.port = int(port)
        self.ae_title = check_ae_title(ae_title)
        self.calling_ae_titles = [check_ae_title(t, "calling AE title") for t in calling_ae_titles]
        self.name_pattern = name_pattern
        self.ssl_context = ssl_context
        self.insecure = bool(insecure)
        self.on_image = on_image
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._count = 0

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the node listens on (the real port once started with port 0)."""
        if self._server is None:
            return (self.host, self.port)
        host, port = self._server.server_address[:2]
        return (str(host), int(port))

    @property
    def received_count(self) -> int:
        """Images received and written since the start."""
        return self._count

    def start(self) -> DicomReceiver:
        """Listen; return self. Raises OSError when the address cannot be bound."""
        if self._server is not None:
            return self
        ae = AE(ae_title=self.ae_title)
        # every storage SOP class, in every transfer syntax pynetdicom knows (compressed too)
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)  # the console's "echo" button
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.calling_ae_titles)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._server = ae.start_server(
            (self.host, self.port),
            block=False,
            ssl_context=self.ssl_context,
            evt_handlers=handlers,
        )
        host, port = self.address
        if not is_loopback(host) and self.ssl_context is None:
            logger.warning(
                "INSECURE: receiving DICOM on %s:%d without TLS (--dicom-insecure); images "
                "cross the network unencrypted",
                host,
                port,
            )
        logger.info(
            "DICOM node %s listening on %s:%d%s, writing received images to %s",
            self.ae_title,
            host,
            port,
            " (TLS)" if self.ssl_context is not None else "",
            self.folder,
        )
        return self

    def stop(self) -> None:
        """Stop listening and end open associations."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> DicomReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ association events

    def _on_rejected(self, event: Any) -> None:
        requestor = event.assoc.requestor
        logger.warning(
            "DICOM association from %s (calling AE %r, called AE %r) rejected: %s",
            requestor.address,
            requestor.ae_title,
            event.assoc.acceptor.ae_title,
            "calling AE title not on the allow list" if self.calling_ae_titles else "refused",
        )

    def _on_store(self, event: Any) -> int:
        """One C-STORE: parse, write atomically, report; the status for the sender."""
        received = time.time()
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            data = event.encoded_dataset()
            dataset = _parse(data)
        except Exception as exc:
            logger.error("DICOM image from %r is not readable (%s); refused", calling, exc)
            return CANNOT_UNDERSTAND
        name = file_name_for(dataset, self.name_pattern)
        path = self.folder / name
        try:
            write_atomically(path, data)
        except OSError as exc:
            logger.error("cannot write received DICOM image %s: %s", path, exc)
            return OUT_OF_RESOURCES
        with self._lock:
            self._count += 1
        logger.debug("received %s from %r (%d bytes)", name, calling, len(data))
        if self.on_image is not None:
            try:
                self.on_image(ReceivedImage(path, data, dataset, calling, received))
            except Exception:  # the file is in place: the image is not lost
                logger.exception("handing over received image %s failed", path)
        return SUCCESS
