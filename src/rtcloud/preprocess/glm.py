"""An incremental GLM: detrending and motion regression of ROI signals, volume by volume.

The cumulative GLM of real-time tools (OpenNFT, Turbo-BrainVoyager): the model of volume t is
``y_t = x_t . beta``, with columns

- an intercept, and polynomial drifts of the volume number up to ``drift_order``,
- the six motion parameters (nuisance),
- optionally the task regressors (one row per volume, from the experiment's design),

and after every volume the estimate uses all volumes so far: the sums ``X'X`` and ``X'y`` are
updated (a rank-one update, exactly what recursive least squares computes) and the small
system solved again. Columns enter when there are enough volumes to estimate them: the drift
after ``len(drift) + 2`` volumes, the motion columns after ``MOTION_AFTER`` (20) volumes;
before that they are left out of the model.

For each volume and ROI it gives:

- ``cleaned``: the signal with drift and motion removed, ``y_t - x_t[nuisance] . beta``
  (intercept and task effects kept), in the signal's units;
- ``activation``: the cleaned signal as a percent change from the intercept (the signal's
  level), the usual feedback value;
- with task regressors, each one's beta and t statistic so far.

Pure module: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["GlmUpdate", "IncrementalGlm", "MOTION_AFTER"]

#: Motion regressors enter the model once this many volumes have been seen.
MOTION_AFTER = 20
#: Volumes over which the drift is scaled (keeps the normal matrix well conditioned).
DRIFT_SCALE = 100.0


@dataclass(frozen=True)
class GlmUpdate:
    """The model's values after one volume, one entry per ROI."""

    cleaned: NDArray[np.float64]
    activation: NDArray[np.float64]
    #: task regressor betas and t statistics, shape (n_task, n_rois); empty without a task
    task_beta: NDArray[np.float64]
    task_t: NDArray[np.float64]


class IncrementalGlm:
    """Cumulative GLM of ``n_rois`` signals (see the module docstring).

    Args:
        n_rois: number of signals updated together.
        drift_order: highest power of the volume number among the regressors (0: none).
        motion: regress out the six motion parameters.
        task: per-volume task regressors, shape (n_volumes,) or (n_volumes, n_task), or None.
    """

    def __init__(
        self,
        n_rois: int,
        *,
        drift_order: int = 1,
        motion: bool = True,
        task: NDArray[np.floating] | None = None,
    ) -> None:
        self.n_rois = int(n_rois)
        self.drift_order = int(drift_order)
        self.motion = bool(motion)
        if task is None:
            self.task = np.zeros((0, 0))
        else:
            arr = np.asarray(task, dtype=float)
            self.task = arr[:, None] if arr.ndim == 1 else arr
            if self.task.ndim != 2:
                raise ValueError(
                    f"task must be (n_volumes,) or (n_volumes, n_task), got {arr.shape}"
                )
        self.n_task = self.task.shape[1]
        self._n_drift = self.drift_order
        self._n_motion = 6 if self.motion else 0
        self.n_columns = 1 + self._n_drift + self._n_motion + self.n_task
        self._xtx = np.zeros((self.n_columns, self.n_columns))
        self._xty = np.zeros((self.n_columns, self.n_rois))
        self._yty = np.zeros(self.n_rois)
        self.count = 0

    def _row(self, index: int, motion: NDArray[np.floating] | None) -> NDArray[np.float64]:
        row = np.zeros(self.n_columns)
        row[0] = 1.0
        scaled = index / DRIFT_SCALE
        for power in range(1, self._n_drift + 1):
            row[power] = scaled**power
        first_motion = 1 + self._n_drift
        if self._n_motion and motion is not None:
            row[first_motion : first_motion + 6] = motion
        if self.n_task:
            if index < len(self.task):
                row[first_motion + self._n_motion :] = self.task[index]
        return row

    def _active(self) -> NDArray[np.bool_]:
        active = np.zeros(self.n_columns, dtype=bool)
        active[0] = True
        if self.count >= self._n_drift + 2:
            active[1 : 1 + self._n_drift] = True
        first_motion = 1 + self._n_drift
        if self._n_motion and self.count >= MOTION_AFTER:
            active[first_motion : first_motion + 6] = True
        if self.n_task:
            task_cols = slice(first_motion + self._n_motion, self.n_columns)
            # a task column enters when it has varied (a constant column duplicates the intercept)
            sums = self._xtx[0, task_cols]
            squares = np.diag(self._xtx)[task_cols]
            n = max(self.count, 1)
            active[task_cols] = (squares / n - (sums / n) ** 2) > 1e-12
        return active

    def update(
        self, index: int, signals: NDArray[np.floating], motion: NDArray[np.floating] | None
    ) -> GlmUpdate:
        """Add volume ``index`` (its ROI signals and motion parameters); return its values."""
        y = np.asarray(signals, dtype=float).reshape(self.n_rois)
        x = self._row(index, motion)
        self._xtx += np.outer(x, x)
        self._xty += np.outer(x, y)
        self._yty += y * y
        self.count += 1
        active = self._active()
        xtx = self._xtx[np.ix_(active, active)]
        # Least squares through the normal equations, each column scaled to unit norm first:
        # the drift powers (index/100)^p are tiny early in a run, and a ridge (or rounding)
        # sized for the intercept would bias them. A pseudo-inverse handles a column that
        # is all zeros (no motion yet) or a duplicate of another.
        diag = np.diag(xtx)
        scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
        inverse = np.linalg.pinv(xtx * np.outer(scale, scale), rcond=1e-12, hermitian=True)
        inverse *= np.outer(scale, scale)  # (X'X)^-1 of the active columns
        beta_active = inverse @ self._xty[active]
        beta = np.zeros((self.n_columns, self.n_rois))
        beta[active] = beta_active
        first_task = 1 + self._n_drift + self._n_motion
        nuisance = np.zeros(self.n_columns, dtype=bool)
        nuisance[1:first_task] = True
        cleaned = y - x[nuisance] @ beta[nuisance]
        level = beta[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            activation = np.where(level != 0, 100.0 * (cleaned - level) / level, 0.0)
        task_beta = beta[first_task:]
        task_t = np.full_like(task_beta, np.nan)
        n_params = int(active.sum())
        if self.n_task and self.count > n_params:
            rss = self._yty - 2 * np.einsum("ij,ij->j", beta_active, self._xty[active])
            rss += np.einsum("ij,ik,kj->j", beta_active, xtx, beta_active)
            sigma2 = np.maximum(rss, 0.0) / (self.count - n_params)
            positions = np.cumsum(active) - 1
            for k in range(self.n_task):
                column = first_task + k
                if active[column]:
                    var = inverse[positions[column], positions[column]] * sigma2
                    with np.errstate(divide="ignore", invalid="ignore"):
                        task_t[k] = np.where(var > 0, task_beta[k] / np.sqrt(var), np.nan)
        return GlmUpdate(cleaned, activation, task_beta.copy(), task_t)
