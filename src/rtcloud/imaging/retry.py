"""``readRetryDicomFromDataInterface``: wait for a DICOM file through any data interface.

It works with a local or remote data interface alike (it only calls ``watchFile``), keeps
waiting while the file is missing or still being written, and gives up when the time is
spent, returning None as RT-Cloud's scripts expect.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydicom.dataset import Dataset

from rtcloud.errors import InvalidDicomError, InvalidRequestError
from rtcloud.imaging.dicom import read_dicom_bytes

__all__ = ["readRetryDicomFromDataInterface"]

logger = logging.getLogger(__name__)


def readRetryDicomFromDataInterface(
    dataInterface: Any, filename: str, timeout: float = 5
) -> Dataset | None:
    """The DICOM dataset of ``filename`` once it is complete, or None after ``timeout`` s.

    ``filename`` may be a bare name in the folder given to ``dataInterface.initWatch``.
    """
    if timeout is None or timeout <= 0:
        raise InvalidRequestError(
            f"readRetryDicomFromDataInterface: timeout must be > 0, got {timeout!r}"
        )
    deadline = time.monotonic() + float(timeout)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning("no complete DICOM %s within %.1f s", filename, timeout)
            return None
        try:
            data = dataInterface.watchFile(filename, timeout=remaining)
        except TimeoutError:
            continue
        try:
            return read_dicom_bytes(data)
        except InvalidDicomError:
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
