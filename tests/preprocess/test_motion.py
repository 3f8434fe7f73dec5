"""Motion correction: known rigid motions of a real volume, and SimpleITK on the real series.

The moved volumes are made from the whole real volume (27 slices) by a cubic-spline resampling
through the known transform, then both the reference and the moved volume are cut to the
middle 21 slices: the moved slab then holds real tissue at its top and bottom, as a real
acquisition of a moved head does (zero padding there would be an edge no scanner makes).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from rtcloud.preprocess.motion import MotionCorrector, params_from_matrix, rigid_matrix

CUT = 3  # slices cut from each end of the slab


def _cut_affine(affine: np.ndarray) -> np.ndarray:
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ [0, 0, CUT] + affine[:3, 3]
    return out


def _moved(full: np.ndarray, affine: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The volume of a head moved by ``transform`` (moving(T(x)) = reference(x)), cut."""
    vox = np.linalg.inv(affine) @ np.linalg.inv(transform) @ affine
    moved = ndimage.affine_transform(
        full, vox[:3, :3], offset=vox[:3, 3], order=3, mode="constant", cval=0.0
    )
    return moved[:, :, CUT:-CUT]


def test_parameters_and_matrices_round_trip():
    center = np.array([3.0, -20.0, 15.0])
    params = np.array([1.2, -0.7, 0.3, 2.5, -1.0, 0.4])
    matrix = rigid_matrix(params, center)
    np.testing.assert_allclose(params_from_matrix(matrix, center), params, atol=1e-12)
    # the centre moves by the translation; the rotation is proper
    moved_center = matrix[:3, :3] @ center + matrix[:3, 3]
    np.testing.assert_allclose(moved_center - center, params[:3], atol=1e-12)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0)


def test_known_motions_of_a_real_volume_are_recovered_within_005_mm_and_deg(real_volume):
    full, affine = real_volume
    reference = full[:, :, CUT:-CUT]
    corrector = MotionCorrector(reference, _cut_affine(affine))
    rng = np.random.default_rng(7)
    noise = 0.02 * reference[reference > reference.mean()].mean()  # tSNR ~50, as in EPI
    errors = []
    for _ in range(10):
        params = np.concatenate([rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)])
        moving = _moved(full, affine, rigid_matrix(params, corrector.center))
        moving = moving + rng.normal(0, noise, moving.shape)
        estimate = corrector.estimate(moving)
        assert estimate.converged
        errors.append(estimate.params - params)
    worst = np.abs(errors).max(axis=0)
    assert worst[:3].max() <= 0.05, f"translation errors (mm): {worst[:3]}"
    assert worst[3:].max() <= 0.05, f"rotation errors (deg): {worst[3:]}"


def test_a_large_motion_still_converges(real_volume):
    full, affine = real_volume
    reference = full[:, :, CUT:-CUT]
    corrector = MotionCorrector(reference, _cut_affine(affine))
    params = np.array([3.0, -2.5, 2.0, 3.0, -2.0, 2.5])
    moving = _moved(full, affine, rigid_matrix(params, corrector.center))
    estimate = corrector.estimate(moving)
    assert estimate.converged
    np.testing.assert_allclose(estimate.params, params, atol=0.15)


def test_the_realigned_volume_lines_up_with_the_reference(real_volume):
    full, affine = real_volume
    reference = full[:, :, CUT:-CUT]
    corrector = MotionCorrector(reference, _cut_affine(affine))
    params = np.array([0.8, -0.6, 0.5, 0.7, -0.5, 0.6])
    moving = _moved(full, affine, rigid_matrix(params, corrector.center))
    estimate = corrector.estimate(moving)
    realigned = corrector.reslice(moving, estimate.matrix)
    inner = (slice(4, -4), slice(4, -4), slice(2, -2))
    head = reference[inner] > reference.mean()

    def correlation(volume: np.ndarray) -> float:
        return float(np.corrcoef(volume[inner][head], reference[inner][head])[0, 1])

    # as good as reslicing with the true transform (trilinear reslicing blurs a little)
    best = correlation(corrector.reslice(moving, rigid_matrix(params, corrector.center)))
    assert correlation(realigned) >= best - 0.002
    assert correlation(moving) < best - 0.03


def test_no_motion_gives_zero_in_one_step(real_volume):
    full, affine = real_volume
    corrector = MotionCorrector(full, affine)
    estimate = corrector.estimate(full)
    assert estimate.converged and estimate.iterations == 1
    np.testing.assert_allclose(estimate.params, 0, atol=1e-6)


# --------------------------------------------------------------------- SimpleITK as the oracle

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse


def _sitk_image(sitk, data: np.ndarray, affine: np.ndarray):
    lps = LPS @ affine
    sizes = np.sqrt((lps[:3, :3] ** 2).sum(0))
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0), np.float32))
    image.SetSpacing([float(s) for s in sizes])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    image.SetDirection([float(v) for v in (lps[:3, :3] / sizes).ravel()])
    return image


def _sitk_rigid(sitk, fixed, moving, center_lps: np.ndarray) -> np.ndarray:
    """SimpleITK's rigid registration (mean squares, all voxels): the 4x4 LPS transform."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(v) for v in center_lps])
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-5, numberOfIterations=500, gradientMagnitudeTolerance=1e-10
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    out = np.eye(4)
    out[:3, :3] = np.array(transform.GetMatrix()).reshape(3, 3)
    center = np.array(transform.GetCenter())
    out[:3, 3] = np.array(transform.GetTranslation()) + center - out[:3, :3] @ center
    return out


def test_the_real_series_agrees_with_simpleitk_within_01_mm_and_deg(real_series):
    sitk = pytest.importorskip("SimpleITK")
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(2)
    reference = np.asarray(real_series[0].dataobj, dtype=np.float64)
    affine = real_series[0].affine
    corrector = MotionCorrector(reference, affine)
    fixed = _sitk_image(sitk, reference, affine)
    center_lps = (LPS[:3, :3] @ corrector.center).ravel()
    ours, theirs = [], []
    start = None
    for img in real_series[1:]:
        data = np.asarray(img.dataobj, dtype=np.float64)
        estimate = corrector.estimate(data, start)
        assert estimate.converged
        start = estimate.matrix
        lps = _sitk_rigid(sitk, fixed, _sitk_image(sitk, data, affine), center_lps)
        ras = LPS @ lps @ LPS
        ours.append(estimate.params)
        theirs.append(params_from_matrix(ras, corrector.center))
    ours_arr, theirs_arr = np.array(ours), np.array(theirs)
    # the series really moves (so the comparison says something): up to ~0.5 mm in z
    assert np.abs(theirs_arr[:, :3]).max() > 0.2
    difference = np.abs(ours_arr - theirs_arr)
    assert difference[:, :3].max() <= 0.1, f"mm:\n{ours_arr}\n{theirs_arr}"
    assert difference[:, 3:].max() <= 0.1, f"deg:\n{ours_arr}\n{theirs_arr}"


def test_reslicing_matches_simpleitks_resampling(real_volume):
    sitk = pytest.importorskip("SimpleITK")
    full, affine = real_volume
    corrector = MotionCorrector(full, affine, resampler="scipy")
    matrix = rigid_matrix(np.array([1.3, -0.8, 0.6, 1.5, -1.0, 2.0]), corrector.center)
    ours = corrector.reslice(full, matrix)
    image = _sitk_image(sitk, full, affine)
    lps = LPS @ matrix @ LPS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    theirs_image = sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    theirs = sitk.GetArrayFromImage(theirs_image).transpose(2, 1, 0)
    inner = (slice(2, -2), slice(2, -2), slice(2, -2))
    scale = full.max()
    np.testing.assert_allclose(ours[inner] / scale, theirs[inner] / scale, atol=1e-4)


def test_both_reslicing_libraries_give_the_same_volume(real_volume):
    pytest.importorskip("SimpleITK")
    full, affine = real_volume
    matrix = rigid_matrix(np.array([1.3, -0.8, 0.6, 1.5, -1.0, 2.0]), np.zeros(3))
    by_scipy = MotionCorrector(full, affine, resampler="scipy").reslice(full, matrix)
    by_itk = MotionCorrector(full, affine, resampler="simpleitk")
    assert by_itk.resampler == "simpleitk"
    # where a voxel's source lies inside the volume (the libraries differ only at the edge)
    vox = np.linalg.inv(affine) @ matrix @ affine
    grid = np.indices(full.shape).reshape(3, -1)
    source = vox[:3, :3] @ grid + vox[:3, 3:4]
    upper = np.array(full.shape)[:, None] - 1
    inside = ((source >= 0) & (source <= upper)).all(axis=0).reshape(full.shape)
    assert inside.mean() > 0.8
    scale = full.max()
    np.testing.assert_allclose(
        by_scipy[inside] / scale, by_itk.reslice(full, matrix)[inside] / scale, atol=1e-5
    )
