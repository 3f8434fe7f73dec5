"""Gaussian smoothing by a full width at half maximum in millimetres.

The kernel's width per axis is the FWHM divided by that axis's voxel size (from the affine),
so anisotropic voxels (3 x 3 x 4 mm) get an isotropic kernel in millimetres. Sigma is
FWHM / sqrt(8 ln 2); the kernel is cut at three sigma, and the volume's edges are continued
with their own values.

Pure module: numpy and scipy only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["FWHM_TO_SIGMA", "gaussian_smooth", "voxel_sizes"]

#: sigma = FWHM * FWHM_TO_SIGMA
FWHM_TO_SIGMA = 1.0 / math.sqrt(8.0 * math.log(2.0))


def voxel_sizes(affine: NDArray[np.floating]) -> NDArray[np.float64]:
    """The length (mm) of a step along each voxel axis."""
    sizes: NDArray[np.float64] = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(0))
    return sizes


def gaussian_smooth(
    volume: NDArray[np.floating], affine: NDArray[np.floating], fwhm_mm: float
) -> NDArray[np.float32]:
    """``volume`` smoothed with an isotropic Gaussian of ``fwhm_mm`` (0: a float32 copy)."""
    if fwhm_mm < 0 or not math.isfinite(fwhm_mm):
        raise ValueError(f"fwhm_mm must be a finite number >= 0, got {fwhm_mm!r}")
    data = np.asarray(volume, dtype=np.float32)
    if fwhm_mm == 0:
        copy: NDArray[np.float32] = data.copy()
        return copy
    sigma = fwhm_mm * FWHM_TO_SIGMA / voxel_sizes(affine)
    out: NDArray[np.float32] = ndimage.gaussian_filter(
        data, sigma, mode="nearest", truncate=3.0, output=np.float32
    )
    return out
