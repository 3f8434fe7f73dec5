"""Trilinear resampling of a volume through a voxel-to-voxel affine map, by one of two libraries.

``affine_transform(volume, matrix, offset)`` returns ``out[v] = volume[matrix @ v + offset]``
(trilinear, 0 outside the volume), as ``scipy.ndimage.affine_transform`` defines it. Two
libraries do it:

- ``scipy``: ``scipy.ndimage.affine_transform`` (always installed);
- ``simpleitk``: SimpleITK's ``ResampleImageFilter``, when SimpleITK is installed
  (``pip install rtcloud[fast]``). Measured 2-4 times faster on the same volumes (see
  ``benchmarks/README.md``); the values agree except in the outermost half voxel, where
  ITK continues the edge value and scipy fades to 0 (``tests/preprocess/test_motion.py``).

``backend="auto"`` takes SimpleITK when it imports. SimpleITK is imported on first use only.

Pure module: numpy, scipy, and SimpleITK when chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["BACKENDS", "affine_transform", "available_backend"]

BACKENDS = ("auto", "scipy", "simpleitk")
_SITK: list[Any] = []  # the imported module, once


def _simpleitk() -> Any:
    if not _SITK:
        import SimpleITK  # noqa: N813 (the package's own name)

        _SITK.append(SimpleITK)
    return _SITK[0]


def available_backend(backend: str = "auto") -> str:
    """The library ``backend`` stands for here: ``scipy`` or ``simpleitk``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "scipy":
        return "scipy"
    try:
        _simpleitk()
    except ImportError:
        if backend == "simpleitk":
            raise ImportError(
                "SimpleITK is not installed: pip install SimpleITK (or rtcloud[fast])"
            ) from None
        return "scipy"
    return "simpleitk"


def affine_transform(
    volume: NDArray[np.floating] | NDArray[np.integer],
    matrix: NDArray[np.floating],
    offset: NDArray[np.floating],
    backend: str = "scipy",
) -> NDArray[np.float32]:
    """``out[v] = volume[matrix @ v + offset]``, trilinear, 0 outside (see the docstring)."""
    data = np.ascontiguousarray(volume, dtype=np.float32)
    if backend == "simpleitk":
        return _sitk_resample(data, np.asarray(matrix, float), np.asarray(offset, float))
    out: NDArray[np.float32] = ndimage.affine_transform(
        data, matrix, offset=offset, order=1, mode="constant", cval=0.0, output=np.float32
    )
    return out


def _sitk_resample(
    data: NDArray[np.float32], matrix: NDArray[np.float64], offset: NDArray[np.float64]
) -> NDArray[np.float32]:
    sitk = _simpleitk()
    # SimpleITK indexes (x, y, z) = numpy's (k, j, i); unit spacing, identity direction
    image = sitk.GetImageFromArray(data)
    flip = np.eye(3)[::-1]
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in (flip @ matrix @ flip).ravel()])
    transform.SetTranslation([float(v) for v in flip @ offset])
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(image)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    # one thread: a steady time per volume on a busy machine matters more than the best one
    resampler.SetNumberOfThreads(1)
    out: NDArray[np.float32] = sitk.GetArrayFromImage(resampler.Execute(image))
    return out
