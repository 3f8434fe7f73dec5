"""Masks and regions of interest: NIfTI files in any space of the subject, on the functional grid.

A mask may come from any scan of the same session (an anatomical image at 1 mm, a localizer
run, a dcm2niix conversion of the reference volume): all of them share the scanner's world
coordinates, which their affines describe. :func:`resample_mask` takes each functional voxel
centre to the mask's voxel grid through both affines and reads the mask there (trilinear
between mask voxels; a voxel is in when that value is at least 0.5, as nibabel's
``resample_from_to(order=1) >= 0.5`` decides), once per run. The means per
volume are then one indexed sum.

What is refused, with :class:`~rtcloud.errors.MaskError` (its ``kind`` in brackets):

- a mask in a template space (``sform``/``qform`` code Talairach, MNI or other template) or
  one that lies mostly outside the functional volume's field of view (``other-space``): it
  belongs to another space or subject, and its voxels would name the wrong brain;
- an empty mask, or one that covers no functional voxel (``no-overlap``);
- a region that falls almost entirely on background in the reference volume
  (``outside-brain``): the usual sign of another subject's mask or a wrong file.

Pure module: numpy, scipy and nibabel; no threads, sockets or clocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from rtcloud.errors import MaskError

__all__ = ["Roi", "load_mask_image", "resample_mask"]

#: NIfTI xform codes of template spaces (Talairach, MNI 152, other template).
TEMPLATE_CODES = {3: "Talairach", 4: "MNI 152", 5: "a template"}
#: A mask with less of its volume than this inside the functional field of view is refused.
MIN_INSIDE_FRACTION = 0.5
#: A region whose mean reference intensity is below this fraction of the brain's is refused.
MIN_BRAIN_RATIO = 0.25


def load_mask_image(mask: Any, name: str) -> Any:
    """A nibabel image from a path or an image; MaskError naming the file otherwise."""
    if isinstance(mask, (str, os.PathLike)):
        path = os.fspath(mask)
        if not os.path.exists(path):
            raise MaskError(
                f"ROI {name!r}: mask file {path!r} does not exist (give a NIfTI file, e.g. "
                "masks/roi.nii.gz, relative to the working directory or absolute)",
                kind="missing",
            )
        try:
            return nib.load(path)
        except Exception as exc:  # nibabel raises several types for a bad file
            raise MaskError(
                f"ROI {name!r}: cannot read {path!r} as a NIfTI image: {exc}", kind="unreadable"
            ) from exc
    if hasattr(mask, "affine") and hasattr(mask, "dataobj"):
        return mask
    raise MaskError(
        f"ROI {name!r}: expected a NIfTI file path or a nibabel image, got {type(mask).__name__}",
        kind="unreadable",
    )


def _template_space(img: Any) -> str | None:
    header = getattr(img, "header", None)
    if header is None or not hasattr(header, "get_sform"):
        return None
    _, sform_code = header.get_sform(coded=True)
    _, qform_code = header.get_qform(coded=True)
    code = int(sform_code) if sform_code else int(qform_code or 0)
    return TEMPLATE_CODES.get(code)


def resample_mask(
    mask_img: Any,
    shape: tuple[int, ...],
    affine: NDArray[np.floating],
    name: str,
    label: int | None = None,
) -> NDArray[np.bool_]:
    """The mask on the functional grid ``shape``/``affine`` (see the module docstring).

    ``label`` picks one label of an atlas-like mask; without it every non-zero voxel is in.
    """
    space = _template_space(mask_img)
    if space is not None:
        raise MaskError(
            f"ROI {name!r} is in {space} space (its NIfTI sform/qform code says so), not in "
            "this subject's scanner space: bring it to the subject first (e.g. with the "
            "inverse of the subject's normalisation), or draw it on the subject's own scan",
            kind="other-space",
        )
    data = np.asarray(mask_img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MaskError(
            f"ROI {name!r}: a mask must be a 3-D image, got shape {data.shape}", kind="shape"
        )
    inside_mask = (data == label) if label is not None else (np.nan_to_num(data) != 0)
    if not inside_mask.any():
        what = f"no voxel with label {label}" if label is not None else "no non-zero voxel"
        raise MaskError(f"ROI {name!r}: the mask has {what}", kind="no-overlap")
    mask_affine = np.asarray(mask_img.affine, dtype=float)
    # where the mask's voxels fall on the functional grid
    mask_voxels = np.array(np.nonzero(inside_mask), dtype=np.float64)
    to_func = np.linalg.inv(np.asarray(affine, dtype=float)) @ mask_affine
    func_positions = to_func[:3, :3] @ mask_voxels + to_func[:3, 3:4]
    # functional voxel -> world -> mask voxel, for the functional voxels near the mask only
    low = np.clip(np.floor(func_positions.min(axis=1)) - 1, 0, None).astype(int)
    high = np.minimum(np.ceil(func_positions.max(axis=1)) + 2, shape).astype(int)
    resampled: NDArray[np.bool_] = np.zeros(shape, dtype=bool)
    if (high > low).all():
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        grid = np.indices(tuple(high - low), dtype=np.float64).reshape(3, -1) + low[:, None]
        to_mask = np.linalg.inv(mask_affine) @ np.asarray(affine, dtype=float)
        positions = to_mask[:3, :3] @ grid + to_mask[:3, 3:4]
        values = ndimage.map_coordinates(
            inside_mask.astype(np.float32), positions, order=1, mode="constant", cval=0.0
        )
        resampled[box] = (values >= 0.5).reshape(tuple(high - low))
    upper = np.array(shape, dtype=np.float64)[:, None] - 0.5
    inside = ((func_positions >= -0.5) & (func_positions <= upper)).all(axis=0).mean()
    if not resampled.any():
        where = "outside" if inside < MIN_INSIDE_FRACTION else "between the voxels of"
        raise MaskError(
            f"ROI {name!r} does not overlap the functional volume: the mask lies {where} its "
            "field of view (is it from another session, another subject, or a template?)",
            kind="no-overlap",
        )
    if inside < MIN_INSIDE_FRACTION:
        raise MaskError(
            f"ROI {name!r}: only {100 * inside:.0f} % of the mask lies inside the functional "
            "field of view; it is probably in another subject's or session's space",
            kind="other-space",
        )
    return resampled


@dataclass(frozen=True)
class Roi:
    """A region on the functional grid: its name and flat voxel indices."""

    name: str
    indices: NDArray[np.intp]
    mask: NDArray[np.bool_]

    @classmethod
    def from_mask(cls, name: str, mask: NDArray[np.bool_]) -> Roi:
        return cls(name, np.flatnonzero(mask), mask)

    def mean(self, volume: NDArray[np.floating]) -> float:
        return float(volume.ravel()[self.indices].mean(dtype=np.float64))

    def check_on_brain(self, reference: NDArray[np.floating], brain: NDArray[np.intp]) -> None:
        """MaskError when the region lies on background in the reference volume."""
        ref = reference.ravel()
        roi_mean = float(ref[self.indices].mean())
        brain_mean = float(ref[brain].mean()) if brain.size else 0.0
        if brain_mean > 0 and roi_mean < MIN_BRAIN_RATIO * brain_mean:
            raise MaskError(
                f"ROI {self.name!r} lies outside the brain in the reference volume (its mean "
                f"intensity is {100 * roi_mean / brain_mean:.0f} % of the brain's): it is "
                "probably another subject's mask or in another space",
                kind="outside-brain",
            )
