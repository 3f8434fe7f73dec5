"""Reorienting a volume to a reference image's axes (RT-Cloud's getAxesForTransform,
getTransform and saveAsNiftiImage).

A lab that made a reference BOLD image (``cfg.ref_BOLD``, in whatever axis order its
software wrote) computes once how the volumes of a scan map onto it, and then saves each
volume in the reference's layout. The volume's array is in the axis order RT-Cloud read it
in (nibabel's ``mosaic_to_nii``: DICOM's rows, columns, slices, with a RAS affine), not
dcm2niix's: RT-Cloud projects hard-code ``cfg.axesTransform`` for that order, and the same
transform applied to dcm2niix's order would silently scramble the volume.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import os
from typing import Any

import nibabel as nib
import numpy as np

from rtcloud.errors import ValidationError

__all__ = ["getAxesForTransform", "getTransform", "saveAsNiftiImage"]


def _reference(cfg: Any, reference: Any = None) -> nib.Nifti1Image:
    ref = reference if reference is not None else getattr(cfg, "ref_BOLD", None)
    if ref is None:
        raise ValidationError("give the reference image as cfg.ref_BOLD (a NIfTI file)")
    if isinstance(ref, (str, os.PathLike)):
        if not os.path.isfile(ref):
            raise FileNotFoundError(f"reference image {os.fspath(ref)!r} does not exist")
        loaded = nib.load(os.fspath(ref))
        if not isinstance(loaded, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ValidationError(f"reference image {os.fspath(ref)!r} is not NIfTI")
        return loaded
    return ref  # type: ignore[no-any-return]


def _dicom(dicom: Any) -> Any:
    from pydicom.dataset import Dataset

    from rtcloud.imaging.dicom import read_dicom_file

    if isinstance(dicom, Dataset):
        return dicom
    return read_dicom_file(dicom)


def _scan_volume(ds: Any) -> nib.Nifti1Image:
    """A scan's volume as RT-Cloud's helpers read it (nibabel's ``mosaic_to_nii``): the
    DICOM reader's ``(row, column, slice)`` array with its affine in RAS. RT-Cloud projects
    hard-code transforms made from this array's axis codes (``getTransform(('L', 'A', 'S'),
    ('P', 'L', 'S'))`` for an axial Siemens mosaic), so its axis order must not change."""
    from rtcloud.imaging.nifti import LPS_TO_RAS, wrapper_volume

    data, lps = wrapper_volume(ds)
    return nib.Nifti1Image(data, LPS_TO_RAS @ lps)


def getAxesForTransform(startingDicomFile: Any, cfg: Any) -> tuple[tuple[str, ...], ...]:
    """``(target_orientation, dicom_orientation)``: the axis codes of the reference image
    ``cfg.ref_BOLD`` and of a scan's volume (a DICOM file or dataset) as RT-Cloud read it
    (nibabel's ``mosaic_to_nii``: ``('P', 'L', 'S')`` for an axial Siemens mosaic)."""
    target = tuple(nib.aff2axcodes(_reference(cfg).affine))
    volume = _scan_volume(_dicom(startingDicomFile))
    return target, tuple(nib.aff2axcodes(volume.affine))


def getTransform(target_orientation: Any, dicom_orientation: Any) -> np.ndarray:
    """The nibabel orientation transform from a volume's axes to the reference's."""
    target = nib.orientations.axcodes2ornt(target_orientation)
    source = nib.orientations.axcodes2ornt(dicom_orientation)
    return np.asarray(nib.orientations.ornt_transform(source, target))


def saveAsNiftiImage(
    dicomDataObject: Any, fullNiftiFilename: str, cfg: Any, reference: Any = None
) -> str:
    """Save a DICOM volume as a NIfTI file in the reference image's axis layout; return the
    file name. ``cfg.axesTransform`` is :func:`getTransform`'s result (computed here when
    missing); the header and affine are the reference's, as RT-Cloud wrote them."""
    ref = _reference(cfg, reference)
    volume = _scan_volume(_dicom(dicomDataObject))
    transform = getattr(cfg, "axesTransform", None)
    if transform is None:
        transform = getTransform(nib.aff2axcodes(ref.affine), nib.aff2axcodes(volume.affine))
    data = nib.orientations.apply_orientation(np.asanyarray(volume.dataobj), transform)
    if data.shape[:3] != ref.shape[:3]:
        raise ValidationError(
            f"the volume reoriented has shape {data.shape[:3]}, the reference "
            f"{ref.shape[:3]}: is cfg.ref_BOLD an image of this scan?"
        )
    header = ref.header.copy()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    out = type(ref)(data, ref.affine, header)
    os.makedirs(os.path.dirname(os.path.abspath(fullNiftiFilename)), exist_ok=True)
    nib.save(out, fullNiftiFilename)
    return fullNiftiFilename
