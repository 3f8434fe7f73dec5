"""Motion and signal quality per volume: framewise displacement, DVARS, running tSNR.

- Framewise displacement (Power et al. 2012): the sum of the absolute changes of the six
  motion parameters from the previous volume, rotations turned into millimetres as arcs on a
  sphere of 50 mm radius. The first volume's FD is 0.
- DVARS (Power et al. 2012): the root mean square, over the brain, of the change of every
  voxel from the previous (realigned) volume, with intensities scaled so that the
  reference's median brain intensity is 1000; a DVARS of 10 is then a 1 % change.
- tSNR: per voxel, the mean over the run so far divided by the standard deviation (Welford's
  running update, one pass, no history kept); reported as the median over the brain (over
  at most 5000 brain voxels evenly spread, which keeps the median under a tenth of a
  millisecond; the per-voxel map covers every brain voxel).

Pure module: numpy only; no threads, sockets, clocks or files.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["HEAD_RADIUS_MM", "RunningTsnr", "dvars", "framewise_displacement"]

#: Radius (mm) of the sphere on which rotations become distances (Power et al. 2012).
HEAD_RADIUS_MM = 50.0
#: At most this many brain voxels enter the median tSNR.
MEDIAN_VOXELS = 5000


def framewise_displacement(
    previous: NDArray[np.floating] | None,
    current: NDArray[np.floating],
    radius_mm: float = HEAD_RADIUS_MM,
) -> float:
    """FD (mm) between two sets of motion parameters (mm, mm, mm, deg, deg, deg)."""
    if previous is None:
        return 0.0
    delta = np.abs(np.asarray(current, dtype=float) - np.asarray(previous, dtype=float))
    return float(delta[:3].sum() + radius_mm * np.radians(delta[3:6]).sum())


def dvars(
    previous: NDArray[np.floating] | None,
    current: NDArray[np.floating],
    brain: NDArray[np.intp],
    scale: float,
) -> float:
    """DVARS between two realigned volumes over the flat voxel indices ``brain``.

    ``scale`` turns intensities into the mode-1000 units above (1000 / reference median).
    """
    if previous is None:
        return 0.0
    diff = current.ravel()[brain] - previous.ravel()[brain]
    return float(scale * math.sqrt(float(np.mean(np.square(diff, dtype=np.float64)))))


class RunningTsnr:
    """Mean and variance per voxel over the volumes so far (Welford), for the brain voxels."""

    def __init__(self, brain: NDArray[np.intp]) -> None:
        self.brain = brain
        self.count = 0
        self._mean = np.zeros(brain.size, dtype=np.float64)
        self._m2 = np.zeros(brain.size, dtype=np.float64)

    def update(self, volume: NDArray[np.floating]) -> None:
        values = volume.ravel()[self.brain].astype(np.float64)
        self.count += 1
        delta = values - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (values - self._mean)

    def voxels(self) -> NDArray[np.float64]:
        """tSNR of each brain voxel (NaN before two volumes; inf where the variance is 0)."""
        if self.count < 2:
            return np.full(self.brain.size, np.nan)
        std = np.sqrt(self._m2 / (self.count - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            out: NDArray[np.float64] = self._mean / std
        return out

    def median(self) -> float:
        """Median tSNR over the brain (NaN before two volumes); see the module docstring."""
        if self.count < 2:
            return float("nan")
        step = max(1, self.brain.size // MEDIAN_VOXELS)
        std = np.sqrt(self._m2[::step] / (self.count - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            values = self._mean[::step] / std
        finite = values[np.isfinite(values)]
        return float(np.median(finite)) if finite.size else float("nan")
