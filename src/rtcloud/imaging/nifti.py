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
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
    from nibabel.nicom import dicomwrappers

from rtcloud.errors import InvalidDicomError, ValidationError
from rtcloud.imaging.csa import csa_image_tags, first_number, numbering_reversed, numbers
from rtcloud.imaging.frames import classic_view, group_value

__all__ = [
    "VolumeImage",
    "convertDicomFileToNifti",
    "convertDicomImgToNifti",
    "GEOMETRY",
    "LPS_TO_RAS",
    "dcm2niix_order",
    "dicom_to_nifti",
    "niftiToMem",
    "parseDicomVolume",
    "frames_to_nifti",
    "missing_geometry",
    "readNifti",
    "slice_pixels",
    "slices_to_nifti",
    "stack_planes",
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


def _reverse_slices(data: np.ndarray, lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same volume with its slice axis the other way (every voxel stays where it is)."""
    flipped = lps.copy()
    flipped[:3, 3] = lps[:3, 3] + lps[:3, 2] * (data.shape[2] - 1)
    flipped[:3, 2] = -lps[:3, 2]
    return data[:, :, ::-1], flipped


def _mosaic(ds: Dataset, as_dcm2niix: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """A Siemens mosaic's (row, column, slice) array and LPS affine, as nibabel's wrapper
    makes them, from the pixel bytes and a one-pass read of the CSA header; None when this
    is not a plain mosaic (the wrapper then does it). ``as_dcm2niix``: slices numbered in
    reverse come the other way, as dcm2niix turns them."""
    tags = csa_image_tags(ds)
    count = int(first_number(tags, "NumberOfImagesInMosaic") or 0)
    pixels = _native_pixels(ds)
    if count <= 0 or pixels is None:
        return None
    if float(ds.get("RescaleSlope", 1) or 1) != 1 or float(ds.get("RescaleIntercept", 0) or 0):
        return None
    grid = math.ceil(math.sqrt(count))
    rows, cols = pixels.shape
    if rows % grid or cols % grid:
        return None
    tile_rows, tile_cols = rows // grid, cols // grid
    blocks = pixels.reshape(grid, tile_rows, grid, tile_cols).transpose(1, 3, 0, 2)
    data = blocks.reshape(tile_rows, tile_cols, grid * grid)[..., :count]
    try:
        iop = [float(v) for v in ds.ImageOrientationPatient]
        spacing = [float(v) for v in ds.PixelSpacing]
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        return None
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:6])
    # the tiles follow the CSA header's slice normal; without one, row x column (dcm2niix's
    # choice; nibabel's opposite default stacked such a mosaic upside down)
    normal = np.cross(row_dir, col_dir)
    csa_normal = numbers(tags.get("SliceNormalVector"))
    if len(csa_normal) == 3 and float(np.dot(csa_normal, normal)) < 0:
        normal = -normal
    step = float(ds.get("SpacingBetweenSlices") or 0) or float(ds.get("SliceThickness") or 1)
    # the position is the whole mosaic's: move it to the first tile's corner
    shift = (
        col_dir * spacing[0] * (rows - tile_rows) / 2
        + row_dir * spacing[1] * (cols - tile_cols) / 2
    )
    lps = np.eye(4)
    lps[:3, 0] = col_dir * spacing[0]
    lps[:3, 1] = row_dir * spacing[1]
    lps[:3, 2] = normal * step
    lps[:3, 3] = ipp + shift
    if as_dcm2niix and numbering_reversed(tags):
        return _reverse_slices(data, lps)
    return data, lps


def dcm2niix_dtype(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """Unsigned 16-bit pixels whose stored bits leave the top bit free (BitsStored <= 15, as
    on every MR scanner's 12-bit data) as signed 16-bit, as dcm2niix writes them: the same
    values, but a script subtracting two volumes gets negative differences instead of
    numbers wrapped around 65536. A view, not a copy."""
    if pixels.dtype != np.uint16:
        return pixels
    try:
        stored = int(ds.get("BitsStored") or 16)
    except (TypeError, ValueError):
        return pixels
    return pixels.view(np.int16) if 0 < stored <= 15 else pixels


def scanner_image(
    data: np.ndarray, affine: np.ndarray, image_class: type[nib.Nifti1Image] = nib.Nifti1Image
) -> Any:
    """A NIfTI image whose affine is in the scanner's frame, labelled as dcm2niix labels it
    (qform and sform code 1, "scanner"; millimetres and seconds)."""
    image = image_class(data, affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 1)
    image.header.set_xyzt_units("mm", "sec")
    return image


def label_acquisition(
    image: nib.Nifti1Image, repetition_s: float | None, phase_direction: str | None
) -> None:
    """Put what dcm2niix puts in the header of an fMRI image: the repetition time in
    ``pixdim[4]`` (seconds; tools that stack volumes take the TR from there) and which voxel
    axes are the frequency, phase and slice directions (``dim_info``), ``phase_direction``
    being DICOM's InPlanePhaseEncodingDirection (``ROW`` or ``COL``)."""
    if repetition_s is not None and repetition_s > 0 and math.isfinite(repetition_s):
        image.header["pixdim"][4] = repetition_s
    if phase_direction in ("ROW", "COL"):
        # i runs along a DICOM row, j up the rows: phase encoded along a row is along i
        phase = 0 if phase_direction == "ROW" else 1
        image.header.set_dim_info(freq=1 - phase, phase=phase, slice=2)


def wrapper_volume(ds: Dataset, as_dcm2niix: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A classic image's ``(row, column, slice[, ...])`` array and LPS affine, as nibabel's
    DICOM reader (``nibabel.nicom.dicomreaders.mosaic_to_nii`` for a mosaic) makes them.

    This is the frame RT-Cloud's orientation helpers worked in; :func:`dicom_to_nifti`
    reorders it as dcm2niix does (``as_dcm2niix``: a mosaic whose slices were numbered in
    reverse comes with its slice axis turned, as dcm2niix turns it). Raises
    InvalidDicomError for an image that has no place in the scanner.
    """
    is_mosaic = "MOSAIC" in str(ds.get("ImageType", "")).upper()
    mosaic = _mosaic(ds, as_dcm2niix) if is_mosaic else None
    if mosaic is not None:
        return mosaic
    try:
        wrapper = _wrapper(ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = wrapper.get_data()
            affine = wrapper.affine
    except (dicomwrappers.WrapperError, AttributeError, KeyError, ValueError, TypeError) as exc:
        why = None if "PerFrameFunctionalGroupsSequence" in ds else missing_geometry(ds)
        raise InvalidDicomError(f"cannot convert this DICOM image to NIfTI: {why or exc}") from exc
    data = dcm2niix_dtype(np.asarray(data), ds)
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    lps = np.asarray(affine, dtype=np.float64)
    if as_dcm2niix and is_mosaic and data.ndim == 3 and numbering_reversed(csa_image_tags(ds)):
        return _reverse_slices(data, lps)
    return data, lps


#: What places a classic (single-frame or mosaic) image in the scanner.
GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


def missing_geometry(ds: Dataset) -> str | None:
    """Why a classic image cannot be placed in the scanner, and what to do; None if it can."""
    missing = [keyword for keyword in GEOMETRY if not ds.get(keyword)]
    if not missing:
        return None
    return (
        f"it has no {', '.join(missing)}, so where its voxels lie in the scanner is unknown. "
        "Secondary-capture and quality-check exports (a Siemens XA mosaic, a screenshot) "
        "leave these out: export the series from the scanner as MR images (classic or "
        "enhanced)"
    )


def dicom_to_nifti(
    ds: Dataset, image_class: type[nib.Nifti1Image] = nib.Nifti1Image
) -> nib.Nifti1Image:
    """A 3-D (or 4-D for a multi-frame series) NIfTI image of a DICOM dataset.

    The affine maps voxels to RAS millimetres (NIfTI's frame); voxels are ordered as dcm2niix
    orders them, so the result matches ``dcm2niix`` on the same file voxel for voxel.
    """
    if not isinstance(ds, Dataset):
        raise ValidationError(f"expected a pydicom Dataset, got {type(ds).__name__}")
    if "PerFrameFunctionalGroupsSequence" in ds:
        # one volume: stacked along the normal, as dcm2niix does
        stacked: nib.Nifti1Image | None = frames_to_nifti(ds, image_class)
        if stacked is not None:
            return stacked
    view = classic_view(ds)
    if _one_plane(view):
        # a single slice: placed as the slices of a per-slice series are (nibabel's wrapper
        # makes the third axis of a lone slice point the other way than dcm2niix's)
        return slices_to_nifti([view], image_class)  # type: ignore[no-any-return]
    data, affine = dcm2niix_order(*wrapper_volume(ds, as_dcm2niix=True))
    image: nib.Nifti1Image = scanner_image(data, affine, image_class)
    tr = ds.get("RepetitionTime")
    if tr is not None and data.ndim == 4:
        zooms = list(image.header.get_zooms()[:3]) + [float(tr) / 1000.0]
        image.header.set_zooms(zooms)
    return image


def _one_plane(ds: Dataset) -> bool:
    """A grayscale image of one plane (not a mosaic, one frame) with a place in the scanner
    (``ds`` a classic image, or :func:`~rtcloud.imaging.frames.classic_view` of one)."""
    if "MOSAIC" in str(ds.get("ImageType", "")).upper():
        return False
    try:
        if int(ds.get("NumberOfFrames") or 1) != 1 or int(ds.get("SamplesPerPixel") or 1) != 1:
            return False
    except (TypeError, ValueError):
        return False
    return missing_geometry(ds) is None


class VolumeImage(nib.Nifti1Image):
    """A NIfTI image of one volume, with the BIDS sidecar fields of its acquisition.

    It is a ``nibabel.Nifti1Image`` in every respect; ``sidecar`` is a dict of the fields
    dcm2niix writes into its JSON sidecar (see :func:`rtcloud.imaging.sidecar.volume_sidecar`).
    """

    def __init__(
        self,
        dataobj: Any,
        affine: Any,
        header: Any = None,
        extra: Any = None,
        file_map: Any = None,
        *,
        sidecar: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataobj, affine, header, extra, file_map, **kwargs)
        self.sidecar: dict[str, Any] = dict(sidecar or {})


#: Uncompressed little-endian transfer syntaxes, whose pixel data is the array's bytes.
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def _native_pixels(ds: Dataset) -> np.ndarray | None:
    """The pixels of a plain single-frame grayscale image straight from its bytes (what
    ``pixel_array`` gives, without pydicom's per-image checks); None for anything else."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    try:
        bits = int(ds.BitsAllocated)
        signed = int(ds.PixelRepresentation) == 1
        if (
            syntax not in _NATIVE_LE
            or int(ds.get("SamplesPerPixel", 1)) != 1
            or int(ds.get("NumberOfFrames") or 1) != 1
            or bits not in (8, 16, 32)
            or (signed and int(ds.BitsStored) != bits)  # no sign extension to do by hand
        ):
            return None
        rows, cols = int(ds.Rows), int(ds.Columns)
        data = ds.PixelData
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    if not isinstance(data, bytes) or len(data) < rows * cols * dtype.itemsize:
        return None
    pixels = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    stored = int(ds.get("BitsStored") or bits)
    if not signed and 0 < stored < bits and int(pixels.max(initial=0)) >> stored:
        # bits above BitsStored are not the value (old overlays live there): as pydicom
        # and dcm2niix do, leave them out
        pixels = pixels & np.array((1 << stored) - 1, dtype=dtype)
    return dcm2niix_dtype(pixels, ds)


#: Philips' private MRScaleSlope ("Philips MR Imaging DD 001"), and the private per-frame
#: sequence of an enhanced Philips file that holds it.
_PHILIPS_SCALE_SLOPE = (0x2005, 0x100E)
_PHILIPS_FRAME_SCALE = (0x2005, 0x140F)


def _philips_scale_slope(ds: Dataset, frame: Dataset | None = None) -> float | None:
    """Philips' MRScaleSlope of an image (of one frame of an enhanced one), if any."""
    if "PHILIPS" not in str(ds.get("Manufacturer", "")).upper():
        return None
    for holder in (frame, ds):
        if holder is None:
            continue
        element = holder.get(_PHILIPS_SCALE_SLOPE)
        if element is None:
            for item in getattr(holder.get(_PHILIPS_FRAME_SCALE), "value", None) or []:
                element = item.get(_PHILIPS_SCALE_SLOPE)
                if element is not None:
                    break
        if element is not None:
            value = element.value
            try:
                if isinstance(value, bytes):
                    number = float(struct.unpack("<f", value[:4])[0]) if len(value) >= 4 else 0.0
                else:
                    number = float(value[0] if isinstance(value, (list, tuple)) else value)
            except (TypeError, ValueError, struct.error):
                return None
            return number if number > 0 and math.isfinite(number) else None
    return None


def rescaled(pixels: np.ndarray, slope: Any, intercept: Any, scale: float | None) -> Any:
    """Stored values as dcm2niix writes them: ``value * slope + intercept``; on Philips
    images with a private MRScaleSlope ``scale``, the floating-point value dcm2niix writes
    by default (``-p y``): that divided by ``slope * scale``."""
    slope = float(slope) if slope not in (None, "") else 1.0
    intercept = float(intercept) if intercept not in (None, "") else 0.0
    slope = slope or 1.0
    if scale is not None:  # dcm2niix writes these as float32
        return ((pixels * slope + intercept) / (slope * scale)).astype(np.float32)
    if slope != 1 or intercept != 0:
        return pixels * slope + intercept
    return pixels


def slice_pixels(ds: Dataset) -> np.ndarray:
    """A slice's stored values, rescaled (to float) when it has a slope or intercept."""
    native = _native_pixels(ds)
    try:
        pixels = native if native is not None else dcm2niix_dtype(np.asarray(ds.pixel_array), ds)
    except (AttributeError, ValueError, TypeError, RuntimeError) as exc:
        raise ValidationError(f"cannot read the pixels of a DICOM slice: {exc}") from exc
    return rescaled(  # type: ignore[no-any-return]
        pixels,
        ds.get("RescaleSlope"),
        ds.get("RescaleIntercept"),
        _philips_scale_slope(ds),
    )


def stack_planes(
    planes: Sequence[np.ndarray],
    positions: Sequence[np.ndarray],
    iop: np.ndarray,
    spacing: tuple[float, float],
    thickness: float,
    image_class: type[nib.Nifti1Image] = nib.Nifti1Image,
) -> Any:
    """A 3-D image of 2-D planes at their positions, stacked along the slice normal (as
    dcm2niix stacks them), in dcm2niix's voxel order with a RAS affine."""
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    along = [float(np.dot(normal, p)) for p in positions]
    order = sorted(range(len(planes)), key=along.__getitem__)
    shared = len(order) - len({round(x, 3) for x in along})
    if shared:
        raise InvalidDicomError(
            f"{shared} of the {len(planes)} slices of this volume lie where another slice "
            "lies: a multi-echo series (a slice per echo at each position; rtcloud does not "
            "assemble those into volumes yet: read each file with getImageData) or two "
            "series written into one folder under one name pattern"
        )
    shapes = {planes[i].shape for i in order}
    if len(shapes) != 1:
        raise ValidationError(f"the slices of a volume differ in size: {sorted(shapes)}")
    data = np.stack([planes[i] for i in order], axis=-1)
    first, last = positions[order[0]], positions[order[-1]]
    step = (last - first) / (len(order) - 1) if len(order) > 1 else normal * thickness
    # LPS affine of (row index, column index, slice): down the rows is the column direction
    lps = np.eye(4)
    lps[:3, 0] = col_dir * spacing[0]
    lps[:3, 1] = row_dir * spacing[1]
    lps[:3, 2] = step
    lps[:3, 3] = first
    data, affine = dcm2niix_order(data, lps)
    return scanner_image(data, affine, image_class)


def _vector(values: Any, what: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"a slice has no valid {what}: {exc}") from exc


def _thickness(ds: Dataset) -> float:
    return float(ds.get("SpacingBetweenSlices") or 0) or float(ds.get("SliceThickness") or 1)


def slices_to_nifti(
    datasets: Sequence[Dataset], image_class: type[nib.Nifti1Image] = nib.Nifti1Image
) -> Any:
    """The 3-D NIfTI image of the single-slice images of one volume, as dcm2niix makes it.

    The slices are stacked in order of their position along the slice normal (the cross
    product of the row and column directions); the affine comes from the first slice's
    position, the orientation, the pixel spacing and the step between slice positions.
    """
    if not datasets:
        raise ValidationError("slices_to_nifti: no slices")
    first = datasets[0]
    why = missing_geometry(first)
    if why:
        raise InvalidDicomError(f"cannot stack these slices into a volume: {why}")
    spacing = _vector(first.PixelSpacing, "PixelSpacing")
    return stack_planes(
        [slice_pixels(ds) for ds in datasets],
        [_vector(ds.ImagePositionPatient, "ImagePositionPatient") for ds in datasets],
        _vector(first.ImageOrientationPatient, "ImageOrientationPatient"),
        (float(spacing[0]), float(spacing[1])),
        _thickness(first),
        image_class,
    )


def frames_to_nifti(ds: Dataset, image_class: type[nib.Nifti1Image] = nib.Nifti1Image) -> Any:
    """The 3-D image of an enhanced multi-frame object holding one volume (a frame per
    slice), stacked as dcm2niix stacks them; None when the frames are not one volume (more
    than one temporal position, or frames at one position)."""
    frames = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if len(frames) < 2:
        return None
    temporal = {
        group_value(ds, f, "FrameContentSequence", "TemporalPositionIndex") for f in frames
    }
    if len(temporal) > 1:
        return None
    positions = []
    for frame in frames:
        ipp = group_value(ds, frame, "PlanePositionSequence", "ImagePositionPatient")
        if ipp is None:
            return None
        positions.append(_vector(ipp, "ImagePositionPatient"))
    if len({tuple(np.round(p, 4)) for p in positions}) != len(positions):
        return None
    iop = group_value(ds, frames[0], "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = group_value(ds, frames[0], "PixelMeasuresSequence", "PixelSpacing")
    if iop is None or spacing is None:
        return None
    try:
        pixels = dcm2niix_dtype(np.asarray(ds.pixel_array), ds)
    except (AttributeError, ValueError, TypeError, RuntimeError) as exc:
        raise ValidationError(f"cannot read the pixels of a multi-frame image: {exc}") from exc
    planes = []
    for index, frame in enumerate(frames):
        slope = group_value(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = group_value(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
        scale = _philips_scale_slope(ds, frame)
        planes.append(rescaled(pixels[index], slope, intercept, scale))
    thickness = group_value(ds, frames[0], "PixelMeasuresSequence", "SpacingBetweenSlices")
    thickness = thickness or group_value(ds, frames[0], "PixelMeasuresSequence", "SliceThickness")
    spacing_mm = _vector(spacing, "PixelSpacing")
    return stack_planes(
        planes,
        positions,
        _vector(iop, "ImageOrientationPatient"),
        (float(spacing_mm[0]), float(spacing_mm[1])),
        float(thickness or 1),
        image_class,
    )


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
    """Cut a mosaic into a float volume of shape ``(sliceDim, sliceDim, tiles)``.

    RT-Cloud's raw cut, unchanged: every tile of the mosaic in row-major order, the empty
    tiles after the last slice included (a 384x384 mosaic of 27 slices of 64x64 gives 36),
    ``volume[row, column, tile]``, no affine. Scripts index these volumes with masks made
    the same way, so the shape must not change. For an image in world coordinates use
    :func:`dicom_to_nifti` (its slices only, as dcm2niix writes them).
    """
    pixels = np.asarray(dicomImg.pixel_array, dtype=np.float64)
    rows, cols = pixels.shape
    if sliceDim <= 0 or rows % sliceDim or cols % sliceDim:
        raise ValidationError(
            f"parseDicomVolume: a {rows}x{cols} mosaic cannot be cut into {sliceDim}-pixel tiles"
        )
    per_row, per_col = cols // sliceDim, rows // sliceDim
    blocks = pixels.reshape(per_col, sliceDim, per_row, sliceDim).transpose(1, 3, 0, 2)
    return np.ascontiguousarray(blocks.reshape(sliceDim, sliceDim, per_col * per_row))


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
