"""The page's Upload Files tab: files from the experimenter's browser to an allowed folder.

A file goes to one of two places (``target``):

- ``server``: this computer, into the upload folders (``rtcloud serve --upload-dir``, by
  default the project's folder; a relative folder is taken inside the first one) and only
  with the upload file types (``--upload-types``);
- ``data``: the scanner computer, through the data service's ``putFile``, under that
  service's own rules (its ``-d`` folders and ``-f`` types). Offered only with
  ``--dataRemote``: without it the data side is this server, whose data interface may
  read anything, so uploads use the ``server`` rules instead.

Both go through :class:`~rtcloud.interfaces.data.DataInterface` (``putFile`` and, to refuse
overwriting an existing file unless asked, ``listFiles``): the same folder and type checks
as a script's ``putFile``. A file larger than the stated limit (``--upload-limit``) is
refused before it is read. Each upload is a POST of the file's bytes (so the browser can
report progress); the answer is JSON.

HTTP: ``GET /api/upload`` describes the targets and the limit; ``POST
/api/upload?target=T&dir=FOLDER&name=FILE[&replace=1]`` stores one file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from rtcloud.errors import RTCloudError, ServiceUnavailableError, ValidationError
from rtcloud.interfaces.data import DataInterface
from rtcloud.server.config import DEFAULT_UPLOAD_LIMIT, DEFAULT_UPLOAD_TYPES
from rtcloud.server.hub import Hub

__all__ = ["DEFAULT_UPLOAD_LIMIT", "DEFAULT_UPLOAD_TYPES", "UploadRules", "Uploads"]

logger = logging.getLogger(__name__)

#: Seconds allowed per MB on its way to the data service, on top of a minute.
_SECONDS_PER_MB = 1.0
_BAD_NAME = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True)
class UploadRules:
    """Where the page may put files on this server, and how large they may be."""

    folders: list[Path]
    types: list[str] = field(default_factory=lambda: list(DEFAULT_UPLOAD_TYPES))
    limit: int = DEFAULT_UPLOAD_LIMIT


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _size_text(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class Uploads:
    """Answers ``/api/upload``: the rules, and each file the page sends."""

    def __init__(
        self,
        rules: UploadRules,
        hub: Hub,
        data_remote: bool,
        data_connected: Callable[[], bool],
        report: Callable[[str], None],
    ) -> None:
        self.rules = rules
        self._hub = hub
        self._data_remote = data_remote
        self._data_connected = data_connected
        self._report = report
        self.local = DataInterface(
            allowedDirs=[str(f) for f in rules.folders], allowedFileTypes=list(rules.types)
        )

    # ------------------------------------------------------------ what the page shows

    async def describe(self) -> dict[str, Any]:
        targets: list[dict[str, Any]] = [
            {
                "id": "server",
                "label": "This server (the analysis computer)",
                "folders": [str(f) for f in self.rules.folders],
                "types": list(self.rules.types),
                "available": True,
                "note": "A relative folder is taken inside the first allowed folder.",
            }
        ]
        if self._data_remote:
            connected = self._data_connected()
            types: list[str] | None = None
            if connected:
                try:
                    types = await asyncio.to_thread(
                        self._hub.call, "DataInterface", "getAllowedFileTypes", (), {}, 10.0
                    )
                except RTCloudError:
                    connected = False
            targets.insert(
                0,
                {
                    "id": "data",
                    "label": "The scanner computer (data service)",
                    "folders": None,
                    "types": types,
                    "available": connected,
                    "note": "Give a full path on the scanner computer, inside a folder the data "
                    "service allows (its -d option).",
                },
            )
        return {
            "limit": self.rules.limit,
            "limitText": _size_text(self.rules.limit),
            "targets": targets,
        }

    # ------------------------------------------------------------ one file

    def _path(self, target: str, folder: str, name: str) -> str:
        if not name or name in (".", "..") or _BAD_NAME.search(name):
            raise _Refused(400, f"{name!r} is not a plain file name")
        folder = folder.strip()
        if target == "data":
            if not folder:
                raise _Refused(400, "give the folder on the scanner computer (a full path)")
            windows = "\\" in folder and "/" not in folder
            return (folder.rstrip("\\") + "\\" + name) if windows else posixpath.join(folder, name)
        base = self.rules.folders[0]
        where = Path(folder).expanduser() if folder else base
        if not where.is_absolute():
            where = base / where
        return str(where / name)

    def _server_rule_broken(self, path: str) -> str:
        """Which of this server's upload rules ``path`` breaks, and how to change them."""
        name = Path(path).name
        if not any(name.lower().endswith(kind) for kind in self.rules.types):
            return (
                f"{name}: this type of file cannot be uploaded to the server; allowed types: "
                f"{', '.join(self.rules.types)} (rtcloud serve --upload-types)"
            )
        folders = ", ".join(str(f) for f in self.rules.folders)
        return (
            f"{os.path.normpath(Path(path).parent)} is not inside the server's upload folders "
            f"({folders}); "
            "choose a folder inside one of them (rtcloud serve --upload-dir adds folders)"
        )

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        limit = self.rules.limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(
                413,
                f"the file has {_size_text(int(declared))}; files up to {_size_text(limit)} "
                "can be uploaded here",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _Refused(413, f"files up to {_size_text(limit)} can be uploaded here")
        return bytes(body)

    def _store(self, target: str, path: str, data: bytes, replace: bool) -> None:
        """Check and write, on this server or through the data service (a worker thread)."""
        if target == "server":
            try:
                if not replace and self.local.listFiles(path):
                    raise _Refused(409, f"{path} already exists; tick 'Replace existing files'")
                self.local.putFile(path, data)
            except ValidationError:
                raise _Refused(400, self._server_rule_broken(path)) from None
            return
        timeout = 60.0 + _SECONDS_PER_MB * len(data) / 1e6
        if not replace and self._hub.call("DataInterface", "listFiles", (path,), {}, 30.0):
            raise _Refused(409, f"{path} already exists; tick 'Replace existing files'")
        self._hub.call("DataInterface", "putFile", (path, data), {}, timeout)

    async def receive(self, request: Request, user: str) -> JSONResponse:
        params = request.query_params
        target = params.get("target", "server")
        name = params.get("name", "")
        try:
            if target not in ("server", "data") or (target == "data" and not self._data_remote):
                raise _Refused(400, f"unknown upload target {target!r}")
            path = self._path(target, params.get("dir", ""), name)
            data = await self._read_body(request)
            replace = params.get("replace") in ("1", "true", "yes")
            await asyncio.to_thread(self._store, target, path, data, replace)
        except _Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ServiceUnavailableError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except (ValidationError, PermissionError, FileNotFoundError, IsADirectoryError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except RTCloudError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        where = "the scanner computer" if target == "data" else "the server"
        text = f"upload: {user} put {name} ({_size_text(len(data))}) on {where} as {path}"
        logger.info("%s", text)
        self._report(text)
        return JSONResponse({"path": path, "size": len(data), "target": target})

    def close(self) -> None:
        self.local.close()
