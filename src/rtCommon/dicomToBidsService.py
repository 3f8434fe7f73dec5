"""RT-Cloud name: ``dicomToBidsInc``, one DICOM volume as a BidsIncremental."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtcloud.bids.dicom import dicom_to_incremental
from rtcloud.bids.incremental import BidsIncremental

__all__ = ["dicomToBidsInc"]


def dicomToBidsInc(
    dicomImg: Any, extraMetadata: Mapping[str, Any] | None = None
) -> BidsIncremental:
    """A DICOM dataset (one volume) as a BidsIncremental: the image dcm2niix makes of it,
    its acquisition fields (RepetitionTime, EchoTime, SliceTiming ..., in BIDS units; no
    names, IDs or dates of the participant, unlike RT-Cloud's), and ``extraMetadata``
    (at least ``subject`` and ``task``, unless the DICOM ProtocolName names them)."""
    return dicom_to_incremental(dicomImg, dict(extraMetadata or {}))
