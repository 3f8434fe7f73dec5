"""Bulk file copies between the data service's computer and the script's computer.

RT-Cloud's naming is from the cloud's point of view: *upload* copies files from where the
data interface serves them (the scanner side) to the script's computer; *download* copies
files from the script's computer to the data interface's side. These run where they are
called and use any data interface, local or remote.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from typing import Any

from rtcloud.utils import writeFile

__all__ = [
    "downloadFilesFromCloud",
    "downloadFilesFromList",
    "downloadFolderFromCloud",
    "uploadFilesFromList",
    "uploadFilesToCloud",
    "uploadFolderToCloud",
]

logger = logging.getLogger(__name__)


def _target(name: str, outputDir: str, srcDirPrefix: str | None) -> str:
    if srcDirPrefix:
        rel = os.path.relpath(name, srcDirPrefix)
        if rel.startswith(os.pardir):
            rel = os.path.basename(name)
    else:
        rel = os.path.basename(name)
    return os.path.join(outputDir, rel)


def uploadFilesFromList(
    dataInterface: Any, fileList: Iterable[str], outputDir: str, srcDirPrefix: str | None = None
) -> list[str]:
    """Copy each remote file of ``fileList`` into ``outputDir`` here; return the local paths.

    With ``srcDirPrefix`` the sub-folders below that prefix are kept.
    """
    written = []
    for name in fileList:
        try:
            data = dataInterface.getFile(name)
        except IsADirectoryError:
            continue
        out = _target(name, outputDir, srcDirPrefix)
        writeFile(out, data)
        logger.info("uploaded %s -> %s (%d bytes)", name, out, len(data))
        written.append(out)
    return written


def downloadFilesFromList(
    dataInterface: Any, fileList: Iterable[str], outputDir: str, srcDirPrefix: str | None = None
) -> list[str]:
    """Copy each local file of ``fileList`` to ``outputDir`` on the data side; return the paths."""
    written = []
    for name in fileList:
        with open(name, "rb") as fh:
            data = fh.read()
        out = _target(name, outputDir, srcDirPrefix)
        dataInterface.putFile(out, data)
        logger.info("downloaded %s -> %s (%d bytes)", name, out, len(data))
        written.append(out)
    return written


def uploadFolderToCloud(dataInterface: Any, srcDir: str, outputDir: str) -> list[str]:
    """Copy a remote folder (recursively) into ``outputDir``: ``stim`` arrives as
    ``outputDir/stim/...``, ``stim/`` (a trailing separator) as its contents, as RT-Cloud."""
    src = srcDir.rstrip("/\\")
    files = dataInterface.listFiles(os.path.join(src, "**"))
    return uploadFilesFromList(dataInterface, files, outputDir, srcDirPrefix=_prefix(srcDir))


def uploadFilesToCloud(dataInterface: Any, srcFilePattern: str, outputDir: str) -> list[str]:
    """Copy the remote files matching ``srcFilePattern`` flat into ``outputDir``."""
    files = dataInterface.listFiles(srcFilePattern)
    return uploadFilesFromList(dataInterface, files, outputDir)


def _prefix(srcDir: str) -> str:
    """What is cut from the files' paths: the folder's parent, or with a trailing separator
    the folder itself (RT-Cloud took ``os.path.dirname`` of the folder as given)."""
    if srcDir.endswith(("/", "\\")):
        return srcDir.rstrip("/\\")
    return os.path.dirname(srcDir)


def _allowed(name: str, types: list[str]) -> bool:
    if not types or types[0] == "*":
        return True
    low = name.lower()
    return any(low.endswith(ext) for ext in types)


def downloadFolderFromCloud(
    dataInterface: Any, srcDir: str, outputDir: str, deleteAfter: bool = False
) -> list[str]:
    """Copy a local folder (recursively, allowed types only) to ``outputDir`` on the data
    side: ``stim`` arrives as ``outputDir/stim/...``, ``stim/`` as its contents, as RT-Cloud."""
    types = dataInterface.getAllowedFileTypes()
    src = srcDir.rstrip("/\\")
    files = [
        f
        for f in glob.glob(os.path.join(src, "**"), recursive=True)
        if os.path.isfile(f) and _allowed(f, types)
    ]
    written = downloadFilesFromList(dataInterface, files, outputDir, srcDirPrefix=_prefix(srcDir))
    if deleteAfter:
        for name in files:
            os.remove(name)
    return written


def downloadFilesFromCloud(
    dataInterface: Any, srcFilePattern: str, outputDir: str, deleteAfter: bool = False
) -> list[str]:
    """Copy the local files matching ``srcFilePattern`` flat to ``outputDir`` on the data side."""
    files = [f for f in glob.glob(srcFilePattern) if os.path.isfile(f)]
    written = downloadFilesFromList(dataInterface, files, outputDir)
    if deleteAfter:
        for name in files:
            os.remove(name)
    return written
