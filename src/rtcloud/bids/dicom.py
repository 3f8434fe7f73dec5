"""One DICOM volume as a BidsIncremental, the way dcm2niix and its JSON sidecar describe it.

The image is :func:`rtcloud.imaging.nifti.dicom_to_nifti`'s (RAS affine, dcm2niix's voxel
order) and the sidecar fields are :func:`rtcloud.imaging.sidecar.bids_sidecar`'s
(RepetitionTime, EchoTime, SliceTiming ... in BIDS units). Only acquisition fields are taken
from the DICOM header, never names, IDs or dates of the participant. Entities come from the
caller and, where the caller gives none, from a ProtocolName such as ``func_task-rest_run-1``.

Pure module: no threads, sockets, clocks or event loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nibabel as nib

from rtcloud.bids.incremental import BidsIncremental
from rtcloud.errors import MissingMetadataError

__all__ = ["dicom_to_incremental", "nifti_to_incremental"]


def nifti_to_incremental(
    image: nib.Nifti1Image, sidecar: Mapping[str, Any], entities: Mapping[str, Any]
) -> BidsIncremental:
    """A BidsIncremental of a converted volume, its sidecar fields and the stream's entities."""
    metadata: dict[str, Any] = {"suffix": "bold", "datatype": "func"}
    metadata.update(sidecar)
    metadata.update({k: v for k, v in entities.items() if v is not None})
    if metadata.get("RepetitionTime") is None:
        raise MissingMetadataError(
            "the DICOM volume has no RepetitionTime, which a BIDS fMRI image needs; give it "
            "as an entity, e.g. initDicomBidsStream(..., RepetitionTime=2.0)"
        )
    return BidsIncremental(image, metadata)


def dicom_to_incremental(ds: Any, entities: Mapping[str, Any]) -> BidsIncremental:
    """A BidsIncremental of one DICOM volume (a pydicom Dataset) with the given entities."""
    from rtcloud.imaging.nifti import dicom_to_nifti
    from rtcloud.imaging.sidecar import bids_sidecar

    image = dicom_to_nifti(ds)
    return nifti_to_incremental(image, bids_sidecar(ds, image.shape), entities)
