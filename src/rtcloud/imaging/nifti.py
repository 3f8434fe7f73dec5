"""DICOM to NIfTI in memory, laid out voxel for voxel as dcm2niix writes it.

nibabel's DICOM wrapper does the DICOM part: it cuts a Siemens mosaic into slices, stacks the
frames of an enhanced multi-frame image, and gives the voxel-to-patient affine from the
image position, orientation, pixel spacing and slice direction. Two things separate that from
the NIfTI file the field's reference converter (dcm2niix, which RT-Cloud ran per volume)
writes, and both are applied here:

- Frame. DICOM patient coordinates are LPS (+x to the patient's left, +y posterior); a NIfTI
  affine maps to RAS (+x right, +y anterior). The wrapper's affine is LPS, so its first two
  rows change sign. Leaving them as they were mirrored every image left-right and front-back.
- Voxel order. The wrapper's first axis runs down the rows of a DICOM image. dcm2niix's runs
  along a row (the column index) and its second axis runs up the rows (bottom row first).
  Converting to the same order means a voxel index taken from a dcm2niix image of the same
  series (an ROI made in FSL, say) names the same voxel here, as it did in RT-Cloud.

The slice axis keeps the wrapper's order (mosaic tile order, frame order along the slice
normal). ``tests/imaging/test_nifti_dcm2niix.py`` checks data and affine against dcm2niix
itself. No external program and no temporary files are needed at run time.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
    from nibabel.nicom import dicomwrappers

from rtcloud.errors import ValidationError

__all__ = [
    "convertDicomFileToNifti",
    "convertDicomImgToNifti",
    "LPS_TO_RAS",
    "dcm2niix_order",
    "dicom_to_nifti",
    "niftiToMem",
    "parseDicomVolume",
    "readNifti",
]


def _wrapper(ds: Dataset) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        return dicomwrappers.wrapper_from_data(ds)


#: LPS (DICOM patient coordinates) to RAS (NIfTI world coordinates), and back: its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def dcm2niix_order(data: np.ndarray, lps_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder a wrapper's (row, column, slice, ...) array as dcm2niix does; RAS affine.

    Output voxel ``(i, j, k)`` is input voxel ``(rows - 1 - j, i, k)``: ``i`` runs along a
    row, ``j`` up the rows. Trailing axes (time) are kept.
    """
    rows = data.shape[0]
    out = np.swapaxes(data, 0, 1)[:, ::-1, ...]
    to_input = np.array(
        [[0.0, -1.0, 0.0, rows - 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1]]
    )
    return np.ascontiguousarray(out), LPS_TO_RAS @ lps_affine @ to_input


def dicom_to_nifti(ds: Dataset) -> nib.Nifti1Image:
    """A 3-D (or 4-D for a multi-frame series) NIfTI image of a DICOM dataset.

    The affine maps voxels to RAS millimetres (NIfTI's frame); voxels are ordered as dcm2niix
    orders them, so the result matches ``dcm2niix`` on the same file voxel for voxel.
    """
    if not isinstance(ds, Dataset):
        raise ValidationError(f"expected a pydicom Dataset, got {type(ds).__name__}")
    try:
        wrapper = _wrapper(ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = wrapper.get_data()
            affine = wrapper.affine
    except (dicomwrappers.WrapperError, AttributeError, KeyError, ValueError, TypeError) as exc:
        raise ValidationError(f"cannot convert this DICOM image to NIfTI: {exc}") from exc
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    data, affine = dcm2niix_order(np.asarray(data), np.asarray(affine, dtype=np.float64))
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    tr = ds.get("RepetitionTime")
    if tr is not None and data.ndim == 4:
        zooms = list(image.header.get_zooms()[:3]) + [float(tr) / 1000.0]
        image.header.set_zooms(zooms)
    return image


def convertDicomImgToNifti(dicomImg: Dataset, dicomFilename: str | None = None) -> nib.Nifti1Image:
    """RT-Cloud name: a DICOM dataset (a Siemens mosaic, say) as an in-memory NIfTI image.

    The same image dcm2niix makes of the file (voxel order, RAS affine), without running it.
    """
    return dicom_to_nifti(dicomImg)


def convertDicomFileToNifti(
    dicomFilename: str | os.PathLike[str], niftiFilename: str | os.PathLike[str]
) -> None:
    """Convert a DICOM file to a NIfTI file (``.nii`` or ``.nii.gz``), as dcm2niix would."""
    from rtcloud.imaging.dicom import read_dicom_file

    image = dicom_to_nifti(read_dicom_file(dicomFilename))
    nib.save(image, os.fspath(niftiFilename))


def niftiToMem(niftiImg: nib.Nifti1Image) -> nib.Nifti1Image:
    """A copy of a NIfTI image whose data is held in memory (not read lazily from disk)."""
    return nib.Nifti1Image(np.asarray(niftiImg.dataobj), niftiImg.affine, niftiImg.header)


def readNifti(filename: str | os.PathLike[str], memCached: bool = True) -> nib.Nifti1Image:
    """Load a NIfTI file; with ``memCached`` its data is read into memory at once."""
    path = Path(filename)
    if not path.exists():
        raise FileNotFoundError(f"NIfTI file {str(path)!r} does not exist")
    image = nib.load(os.fspath(path))
    if not isinstance(image, nib.Nifti1Image):
        raise ValidationError(f"{str(path)!r} is not a NIfTI-1 image")
    return niftiToMem(image) if memCached else image


def parseDicomVolume(dicomImg: Dataset, sliceDim: int) -> np.ndarray:
    """Cut a mosaic into a float volume of shape ``(sliceDim, sliceDim, nSlices)``.

    The tiles keep DICOM's order, ``volume[row, column, slice]``, with no affine: this is
    RT-Cloud's raw cut. For an image in world coordinates use :func:`dicom_to_nifti`, whose
    array is ``volume.transpose(1, 0, 2)[:, ::-1]``.

    The slices are the tiles in row-major order; ``nSlices`` comes from the Siemens private
    tag NumberOfImagesInMosaic (0019,100a) when present, else from the mosaic's tile count.
    """
    pixels = np.asarray(dicomImg.pixel_array, dtype=np.float64)
    rows, cols = pixels.shape
    if sliceDim <= 0 or rows % sliceDim or cols % sliceDim:
        raise ValidationError(
            f"parseDicomVolume: a {rows}x{cols} mosaic cannot be cut into {sliceDim}-pixel tiles"
        )
    per_row = cols // sliceDim
    tiles = (rows // sliceDim) * per_row
    count = _mosaic_count(dicomImg) or tiles
    count = max(1, min(count, tiles))
    volume = np.zeros((sliceDim, sliceDim, count))
    for index in range(count):
        r, c = divmod(index, per_row)
        volume[:, :, index] = pixels[
            r * sliceDim : (r + 1) * sliceDim, c * sliceDim : (c + 1) * sliceDim
        ]
    return volume


def _mosaic_count(ds: Dataset) -> int | None:
    """Slices in a Siemens mosaic: private tag (0019,100a), else the CSA image header."""
    element = ds.get((0x0019, 0x100A))
    if element is not None:
        value = element.value
        try:
            if isinstance(value, bytes):
                return int.from_bytes(value[:2], "little")
            return int(value)
        except (TypeError, ValueError):
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader

        try:
            header = csareader.get_csa_header(ds)
            count = csareader.get_n_mosaic(header) if header else None
        except csareader.CSAError:
            return None
    return int(count) if count else None


def mosaic_grid(n_slices: int) -> int:
    """Tiles per side of the square mosaic Siemens uses for ``n_slices`` slices."""
    return int(math.ceil(math.sqrt(n_slices)))
