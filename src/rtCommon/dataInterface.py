"""RT-Cloud name for :mod:`rtcloud.interfaces.data` and the bulk transfer helpers."""

from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.transfer import (
    downloadFilesFromCloud,
    downloadFilesFromList,
    downloadFolderFromCloud,
    uploadFilesFromList,
    uploadFilesToCloud,
    uploadFolderToCloud,
)

__all__ = [
    "DataInterface",
    "downloadFilesFromCloud",
    "downloadFilesFromList",
    "downloadFolderFromCloud",
    "uploadFilesFromList",
    "uploadFilesToCloud",
    "uploadFolderToCloud",
]
