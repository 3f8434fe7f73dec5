"""Pipeline: real-time preprocessing of one run, volume by volume, with the time of each stage.

For every volume (a nibabel image: from ``dataInterface.getVolume``,
``convertDicomImgToNifti``, or one the script made) :meth:`Pipeline.process`:

1. ``check``: the volume has the reference's shape and affine, no NaN or infinity, is not
   all zero;
2. ``motion``: six rigid-body parameters against the reference (:mod:`.motion`);
3. ``reslice``: the volume realigned on the reference grid;
4. ``quality``: framewise displacement, DVARS and running tSNR (:mod:`.metrics`);
5. ``smooth``: Gaussian smoothing by ``fwhm`` mm (:mod:`.smooth`);
6. ``roi``: the mean of every ROI on the smoothed, realigned volume (:mod:`.roi`);
7. ``glm``: the cumulative GLM's cleaned value and activation per ROI (:mod:`.glm`);

and returns a :class:`VolumeResult` with the values and each stage's milliseconds.

Bad input does not end the run. A volume that cannot be used (wrong shape or affine, NaNs,
all zero) comes back with ``usable`` False, NaN values and a
:class:`~rtcloud.errors.VolumeError` in ``problems``; the run goes on with the next one, and
FD and DVARS of the next usable volume are taken against the last usable one. A registration
that does not converge is flagged (:class:`~rtcloud.errors.RegistrationError`) and the next
volume starts from the last converged transform. A mask that cannot be used
(:class:`~rtcloud.errors.MaskError`) is reported in ``Pipeline.problems`` and in the first
result; its ROI's values are NaN, the other ROIs go on. ``result.raise_for_problems()`` turns
the flags into the exception, for scripts that prefer to stop.

The reference is the first volume (default), the volume with a given index (volumes before it
are flagged ``reference``: nothing to compare them with yet), or a NIfTI image or file.

Pure module: the only clock is the one passed in (``time.perf_counter`` by default), read
between stages; no threads, sockets or files except reading the reference and masks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from rtcloud.errors import (
    MaskError,
    PreprocessError,
    RegistrationError,
    RTCloudError,
    VolumeError,
)
from rtcloud.preprocess.glm import IncrementalGlm
from rtcloud.preprocess.metrics import RunningTsnr, dvars, framewise_displacement
from rtcloud.preprocess.motion import (
    PARAM_NAMES,
    MotionCorrector,
    MotionEstimate,
    head_threshold,
)
from rtcloud.preprocess.resample import available_backend
from rtcloud.preprocess.roi import Roi, load_mask_image, resample_mask
from rtcloud.preprocess.slices import SliceViewer, SliceViews
from rtcloud.preprocess.smooth import gaussian_smooth

__all__ = ["STAGES", "Pipeline", "VolumeResult"]

#: The stages of :meth:`Pipeline.process`, in order (keys of ``VolumeResult.timings_ms``).
STAGES = ("check", "motion", "reslice", "quality", "smooth", "roi", "glm")
#: Affines that differ by more than this (mm, or per mm for the linear part) differ.
AFFINE_TOLERANCE = 1e-2

RoiSpec = Any  # a path, a nibabel image, or (path or image, label)


def _problem_dict(problem: PreprocessError) -> dict[str, Any]:
    return {"kind": problem.kind, "message": str(problem), "volume": problem.volume}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class VolumeResult:
    """What :meth:`Pipeline.process` found for one volume."""

    index: int
    usable: bool
    #: tx, ty, tz (mm), rx, ry, rz (degrees) against the reference; NaN when not usable
    motion: NDArray[np.float64]
    fd: float
    dvars: float
    tsnr: float
    roi_means: dict[str, float]
    cleaned: dict[str, float]
    activation: dict[str, float]
    #: per ROI, the task regressors' t statistics so far (empty without a task design)
    task_t: dict[str, list[float]]
    over_threshold: bool
    iterations: int
    converged: bool
    problems: list[PreprocessError]
    #: stage -> milliseconds (see :data:`STAGES`; ``setup`` on the volume that set the
    #: reference up)
    timings_ms: dict[str, float]
    #: the run so far, this volume included
    volumes: int
    volumes_over: int
    usable_minutes: float | None
    realigned: NDArray[np.float32] | None = field(default=None, repr=False)
    smoothed: NDArray[np.float32] | None = field(default=None, repr=False)
    setup_problems: list[PreprocessError] = field(default_factory=list)
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def total_ms(self) -> float:
        return float(sum(self.timings_ms.values()))

    def raise_for_problems(self) -> None:
        """Raise the first problem of this volume (or of the set-up), if any."""
        for problem in self.problems + self.setup_problems:
            raise problem

    def quality(
        self, slices: bool = True, timeline: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """This result as a plain dict for ``webInterface.sendQuality`` (numbers, text, bytes).

        With ``slices`` it carries the three orthogonal slices of the realigned volume with
        the ROIs outlined (about 3 x 4 KB for 64x64x27), as a :class:`.SliceViews` mapping
        drawn when first looked at (``sendQuality`` through a server draws it off the
        script's thread). ``timeline`` adds the script's own
        moments of this volume, ``time.time()`` values: ``received`` (the volume arrived),
        ``resultSent`` and ``resultAcked`` (before and after ``subjInterface.setResult``);
        the page shows where the volume's time went from them.
        """
        out: dict[str, Any] = {
            "index": self.index,
            "usable": self.usable,
            "motion": [_finite(v) for v in self.motion],
            "fd": _finite(self.fd),
            "dvars": _finite(self.dvars),
            "tsnr": _finite(self.tsnr),
            "roi": {k: _finite(v) for k, v in self.roi_means.items()},
            "activation": {k: _finite(v) for k, v in self.activation.items()},
            "overThreshold": self.over_threshold,
            "iterations": self.iterations,
            "converged": self.converged,
            "problems": [_problem_dict(p) for p in self.problems + self.setup_problems],
            "stagesMs": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "volumes": self.volumes,
            "volumesOver": self.volumes_over,
            "usableMinutes": self.usable_minutes,
        }
        if timeline is not None:
            out["timeline"] = {str(k): float(v) for k, v in timeline.items()}
        pipeline = self._pipeline
        if pipeline is not None:
            out["fdThreshold"] = pipeline.fd_threshold
            out["tr"] = pipeline.tr
            if slices and self.realigned is not None and pipeline.viewer is not None:
                out["slices"] = SliceViews(
                    pipeline.viewer, self.realigned, [roi.name for roi in pipeline.rois]
                )
        return out


class Pipeline:
    """Real-time preprocessing of one run (see the module docstring).

    Args:
        reference: None for the first volume, an int for that volume's index, or a NIfTI
            image or file.
        fwhm: smoothing kernel, mm (0: none).
        rois: ROI name -> mask (a NIfTI path or image, or ``(mask, label)`` for one label of
            an atlas).
        fd_threshold: volumes whose FD exceeds this (mm) count as over the threshold.
        tr: seconds per volume, for the usable minutes (None: taken from a 4-D reference's
            header, else not computed).
        task: task regressors for the GLM, one row per volume (see :class:`.IncrementalGlm`).
        drift_order: polynomial drift regressors of the GLM.
        motion_regressors: regress the motion parameters out of the ROI signals.
        keep_volumes: keep the realigned and smoothed arrays in each result.
        clock: seconds, read between stages.
        max_points: sample points of the registration.
        resampler: library that reslices: ``auto`` (SimpleITK when installed, else scipy),
            ``scipy`` or ``simpleitk`` (see :mod:`.resample`).
    """

    def __init__(
        self,
        reference: Any = None,
        *,
        fwhm: float = 6.0,
        rois: Mapping[str, RoiSpec] | None = None,
        fd_threshold: float = 0.5,
        tr: float | None = None,
        task: NDArray[np.floating] | None = None,
        drift_order: int = 1,
        motion_regressors: bool = True,
        keep_volumes: bool = True,
        clock: Callable[[], float] = perf_counter,
        max_points: int = 20000,
        resampler: str = "auto",
    ) -> None:
        if fwhm < 0 or not math.isfinite(fwhm):
            raise ValueError(f"fwhm must be a finite number of mm >= 0, got {fwhm!r}")
        if fd_threshold <= 0:
            raise ValueError(f"fd_threshold must be > 0 mm, got {fd_threshold!r}")
        self.fwhm = float(fwhm)
        self.fd_threshold = float(fd_threshold)
        self.tr = float(tr) if tr else None
        self.keep_volumes = keep_volumes
        self._clock = clock
        self._max_points = int(max_points)
        self._resampler = available_backend(resampler)
        self._roi_specs = dict(rois or {})
        self._glm_options: dict[str, Any] = {
            "drift_order": drift_order,
            "motion": motion_regressors,
            "task": task,
        }
        self._reference_index: int | None = None
        self._reference_image: Any = None
        if reference is None:
            self._reference_index = 0
        elif isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
            if reference < 0:
                raise ValueError(f"reference index must be >= 0, got {reference}")
            self._reference_index = int(reference)
        else:
            self._reference_image = _as_image(reference, "reference")
        #: Problems found while setting up (unusable masks), also in the first result.
        self.problems: list[PreprocessError] = []
        self.rois: list[Roi] = []
        self.viewer: SliceViewer | None = None
        self.corrector: MotionCorrector | None = None
        self._roi_names = list(self._roi_specs)
        self._count = 0
        self._over = 0
        self._usable_volumes = 0
        self._last_params: NDArray[np.float64] | None = None
        self._last_matrix: NDArray[np.float64] | None = None
        self._last_realigned: NDArray[np.float32] | None = None
        self._pending_setup: list[PreprocessError] = []

    # ------------------------------------------------------------ set-up

    @property
    def ready(self) -> bool:
        """Whether the reference is set up."""
        return self.corrector is not None

    def _setup(self, data: NDArray[np.float32], affine: NDArray[np.float64], header: Any) -> None:
        self.corrector = MotionCorrector(
            data, affine, max_points=self._max_points, resampler=self._resampler
        )
        self.shape = data.shape
        self.affine = affine
        self.reference = data
        brain = data > head_threshold(data)
        self.brain = np.flatnonzero(brain)
        median = float(np.median(data.ravel()[self.brain])) if self.brain.size else 0.0
        self._dvars_scale = 1000.0 / median if median > 0 else 1.0
        self._tsnr = RunningTsnr(self.brain)
        if self.tr is None and header is not None:
            zooms: tuple[float, ...] = (
                tuple(header.get_zooms()) if hasattr(header, "get_zooms") else ()
            )
            if len(zooms) > 3 and zooms[3] > 0:
                self.tr = float(zooms[3])
        rois: list[Roi] = []
        for name, spec in self._roi_specs.items():
            mask_spec, label = spec if isinstance(spec, tuple) else (spec, None)
            try:
                mask_img = load_mask_image(mask_spec, name)
                mask = resample_mask(mask_img, data.shape, affine, name, label)
                roi = Roi.from_mask(name, mask)
                roi.check_on_brain(data, self.brain)
            except MaskError as exc:
                self.problems.append(exc)
                continue
            rois.append(roi)
        self.rois = rois
        self._glm = IncrementalGlm(max(len(rois), 1), **self._glm_options)
        self.viewer = SliceViewer(affine, data, [roi.mask for roi in rois])
        self._pending_setup = list(self.problems)

    def _set_reference_from_image(self) -> None:
        img = self._reference_image
        try:
            data, affine = _volume_data(img)
            self._setup(data, affine, getattr(img, "header", None))
        except (VolumeError, ValueError) as exc:
            if isinstance(exc, RTCloudError) and not isinstance(exc, VolumeError):
                raise
            shape = getattr(img, "shape", None)
            raise PreprocessError(
                f"the reference image (shape {shape}) cannot be registered to: {exc}. Give "
                "one 3-D volume of this scan, such as its first volume "
                "(nibabel.funcs.four_to_three(img)[0] of a 4-D image)",
                kind="reference",
            ) from exc

    # ------------------------------------------------------------ per volume

    def process(self, image: Any, index: int | None = None) -> VolumeResult:
        """Preprocess one volume (a nibabel image); see the module docstring."""
        clock = self._clock
        timings: dict[str, float] = {}
        idx = self._count if index is None else int(index)
        self._count = max(self._count, idx + 1)
        problems: list[PreprocessError] = []
        start = clock()
        if self.corrector is None and self._reference_image is not None:
            self._set_reference_from_image()
            now = clock()
            timings["setup"] = 1000 * (now - start)
            start = now
        try:
            data, affine = _volume_data(image, idx)
        except VolumeError as exc:
            return self._unusable(idx, [exc], timings, start)
        if self.corrector is None:
            if self._reference_index is not None and idx < self._reference_index:
                problem = VolumeError(
                    f"volume {idx} comes before the reference volume "
                    f"{self._reference_index}: no motion values yet",
                    kind="reference",
                    volume=idx,
                )
                return self._unusable(idx, [problem], timings, start)
            bad = _content_problem(data, idx)
            if bad is not None:
                return self._unusable(idx, [bad], timings, start)
            try:
                self._setup(data, affine, getattr(image, "header", None))
            except ValueError as exc:  # nothing to register to (a thin slab, a flat image)
                if isinstance(exc, RTCloudError):
                    raise
                problem = VolumeError(
                    f"volume {idx} cannot be the reference ({exc}); the next volume will be tried",
                    kind="reference",
                    volume=idx,
                )
                return self._unusable(idx, [problem], timings, start)
            now = clock()
            timings["setup"] = 1000 * (now - start)
            start = now
        assert self.corrector is not None
        is_reference = data is self.reference  # set up from this very volume just now
        bad = None if is_reference else self._check(data, affine, idx)
        now = clock()
        timings["check"] = 1000 * (now - start)
        if bad is not None:
            return self._unusable(idx, [bad], timings, now)
        if is_reference:  # no motion against itself: nothing to estimate or resample
            estimate = MotionEstimate(np.zeros(6), np.eye(4), 0, True, 0.0)
        else:
            estimate = self.corrector.estimate(data, self._last_matrix)
        t_motion = clock()
        timings["motion"] = 1000 * (t_motion - now)
        if not estimate.converged:
            problems.append(
                RegistrationError(
                    f"volume {idx}: motion correction did not converge in "
                    f"{estimate.iterations} iterations (a very large or sudden movement?); "
                    "its motion values are the last estimate",
                    kind="not-converged",
                    volume=idx,
                )
            )
        else:
            self._last_matrix = estimate.matrix
        realigned = data if is_reference else self.corrector.reslice(data, estimate.matrix)
        t_reslice = clock()
        timings["reslice"] = 1000 * (t_reslice - t_motion)
        params = estimate.params
        fd = framewise_displacement(self._last_params, params)
        dv = dvars(self._last_realigned, realigned, self.brain, self._dvars_scale)
        self._tsnr.update(realigned)
        tsnr = self._tsnr.median()
        self._last_params = params
        self._last_realigned = realigned
        over = fd > self.fd_threshold
        self._over += int(over)
        self._usable_volumes += int(not over)
        t_quality = clock()
        timings["quality"] = 1000 * (t_quality - t_reslice)
        smoothed = gaussian_smooth(realigned, self.affine, self.fwhm)
        t_smooth = clock()
        timings["smooth"] = 1000 * (t_smooth - t_quality)
        means = np.array([roi.mean(smoothed) for roi in self.rois]) if self.rois else np.zeros(1)
        t_roi = clock()
        timings["roi"] = 1000 * (t_roi - t_smooth)
        update = self._glm.update(idx, means, params)
        timings["glm"] = 1000 * (clock() - t_roi)
        roi_means, cleaned, activation, task_t = self._per_roi(means, update)
        return VolumeResult(
            index=idx,
            usable=True,
            motion=params,
            fd=fd,
            dvars=dv,
            tsnr=tsnr,
            roi_means=roi_means,
            cleaned=cleaned,
            activation=activation,
            task_t=task_t,
            over_threshold=over,
            iterations=estimate.iterations,
            converged=estimate.converged,
            problems=problems,
            timings_ms=timings,
            volumes=self._count,
            volumes_over=self._over,
            usable_minutes=self._usable_minutes(),
            realigned=realigned if self.keep_volumes else None,
            smoothed=smoothed if self.keep_volumes else None,
            setup_problems=self._take_setup_problems(),
            _pipeline=self,
        )

    def _per_roi(
        self, means: NDArray[np.float64], update: Any
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, list[float]]]:
        roi_means = {name: float("nan") for name in self._roi_names}
        cleaned = dict(roi_means)
        activation = dict(roi_means)
        task_t: dict[str, list[float]] = {}
        for k, roi in enumerate(self.rois):
            roi_means[roi.name] = float(means[k])
            cleaned[roi.name] = float(update.cleaned[k])
            activation[roi.name] = float(update.activation[k])
            if update.task_t.size:
                task_t[roi.name] = [float(v) for v in update.task_t[:, k]]
        return roi_means, cleaned, activation, task_t

    def _usable_minutes(self) -> float | None:
        return None if self.tr is None else self._usable_volumes * self.tr / 60.0

    def _take_setup_problems(self) -> list[PreprocessError]:
        pending, self._pending_setup = self._pending_setup, []
        return pending

    def _check(
        self, data: NDArray[np.float32], affine: NDArray[np.float64], idx: int
    ) -> VolumeError | None:
        if data.shape != self.shape:
            return VolumeError(
                f"volume {idx} has shape {data.shape}, the reference {self.shape}: was the "
                "scan's slab or resolution changed? The volume is skipped",
                kind="shape",
                volume=idx,
            )
        if not np.allclose(affine, self.affine, atol=AFFINE_TOLERANCE, rtol=0):
            moved = float(np.abs(affine[:3, 3] - self.affine[:3, 3]).max())
            return VolumeError(
                f"volume {idx} has another affine than the reference (its grid is moved by up "
                f"to {moved:.2f} mm or turned): was the slab repositioned? The volume is "
                "skipped; restart the run with a new reference if this persists",
                kind="affine",
                volume=idx,
            )
        return _content_problem(data, idx)

    def _unusable(
        self, idx: int, problems: list[PreprocessError], timings: dict[str, float], start: float
    ) -> VolumeResult:
        timings.setdefault("check", 1000 * (self._clock() - start))
        nan = float("nan")
        names = {name: nan for name in self._roi_names}
        return VolumeResult(
            index=idx,
            usable=False,
            motion=np.full(len(PARAM_NAMES), nan),
            fd=nan,
            dvars=nan,
            tsnr=nan,
            roi_means=dict(names),
            cleaned=dict(names),
            activation=dict(names),
            task_t={},
            over_threshold=False,
            iterations=0,
            converged=False,
            problems=problems,
            timings_ms=timings,
            volumes=self._count,
            volumes_over=self._over,
            usable_minutes=self._usable_minutes(),
            setup_problems=self._take_setup_problems(),
            _pipeline=self,
        )


def _as_image(source: Any, what: str) -> Any:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise VolumeError(f"{what} file {path!r} does not exist", kind="missing")
        try:
            return nib.load(path)
        except Exception as exc:  # nibabel raises several types for a bad file
            raise VolumeError(
                f"cannot read {what} {path!r} as NIfTI: {exc}", kind="unreadable"
            ) from exc
    if hasattr(source, "affine") and hasattr(source, "dataobj"):
        return source
    raise VolumeError(
        f"{what} must be a nibabel image or a NIfTI file path, got {type(source).__name__}",
        kind="unreadable",
    )


def _volume_data(
    image: Any, idx: int | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The 3-D float32 data and affine of a nibabel image (a 4-D one with one volume too)."""
    if not (hasattr(image, "affine") and hasattr(image, "dataobj")):
        raise VolumeError(
            f"volume {idx}: expected a nibabel image (e.g. from dataInterface.getVolume or "
            f"convertDicomImgToNifti), got {type(image).__name__}",
            kind="unreadable",
            volume=idx,
        )
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(
            f"volume {idx}: expected one 3-D volume, got an image of shape {data.shape}",
            kind="shape",
            volume=idx,
        )
    return data, np.asarray(image.affine, dtype=np.float64)


def _content_problem(data: NDArray[np.float32], idx: int) -> VolumeError | None:
    if not np.isfinite(data).all():
        count = int((~np.isfinite(data)).sum())
        return VolumeError(
            f"volume {idx} holds {count} NaN or infinite voxels; it is skipped",
            kind="nan",
            volume=idx,
        )
    if not data.any():
        return VolumeError(
            f"volume {idx} is all zero (an empty or unfinished image); it is skipped",
            kind="zero",
            volume=idx,
        )
    return None
