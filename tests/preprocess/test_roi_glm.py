"""ROI masks through the affines (nibabel's resampling as the oracle) and the incremental GLM
(numpy's batch least squares as the oracle)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from rtcloud.errors import MaskError
from rtcloud.preprocess.glm import MOTION_AFTER, IncrementalGlm
from rtcloud.preprocess.motion import head_threshold
from rtcloud.preprocess.roi import Roi, resample_mask


def _anatomical_mask(func_affine: np.ndarray, center_vox, half_mm: float) -> nib.Nifti1Image:
    """A 1 mm mask (another grid, rotated axes) of a box around a functional voxel."""
    center = func_affine[:3, :3] @ np.asarray(center_vox, float) + func_affine[:3, 3]
    # 1 mm voxels, axes in another order (L-R flipped, as an LAS anatomical would be)
    affine = np.array([[-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
    affine[:3, 3] = center - affine[:3, :3] @ np.array([40.0, 40.0, 40.0])
    data = np.zeros((81, 81, 81), dtype=np.uint8)
    r = int(half_mm)
    data[40 - r : 40 + r + 1, 40 - r : 40 + r + 1, 40 - r : 40 + r + 1] = 1
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)  # scanner space
    return img


def test_a_mask_on_another_grid_lands_where_nibabel_puts_it(real_volume):
    data, affine = real_volume
    mask_img = _anatomical_mask(affine, (40, 40, 14), 7)
    ours = resample_mask(mask_img, data.shape, affine, "box")
    func = nib.Nifti1Image(np.zeros(data.shape, np.float32), affine)
    theirs = resample_from_to(mask_img, func, order=1).get_fdata() >= 0.5
    assert ours.sum() > 10
    assert (ours != theirs).sum() <= 0.02 * ours.sum()
    # the box is centred on the voxel it was built around
    centre = np.array(np.nonzero(ours)).mean(axis=1)
    np.testing.assert_allclose(centre, [40, 40, 14], atol=0.6)


def test_a_template_space_mask_is_refused_with_what_to_do(real_volume):
    data, affine = real_volume
    mask_img = _anatomical_mask(affine, (40, 40, 14), 7)
    mask_img.set_sform(mask_img.affine, code=4)  # MNI 152
    with pytest.raises(MaskError, match="MNI 152 space") as info:
        resample_mask(mask_img, data.shape, affine, "v1")
    assert info.value.kind == "other-space"


def test_a_mask_outside_the_field_of_view_is_refused(real_volume):
    data, affine = real_volume
    far = nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.diag([1, 1, 1, 1.0]))
    far.affine[:3, 3] = [500, 500, 500]
    far = nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), far.affine)
    with pytest.raises(MaskError, match="does not overlap") as info:
        resample_mask(far, data.shape, affine, "v1")
    assert info.value.kind == "no-overlap"
    empty = nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), affine)
    with pytest.raises(MaskError, match="no non-zero voxel"):
        resample_mask(empty, data.shape, affine, "v1")


def test_a_mask_on_background_is_flagged_as_another_subjects(real_volume):
    data, affine = real_volume
    mask = np.zeros(data.shape, bool)
    mask[0:4, 0:4, 10:14] = True  # a corner of the field of view: air
    brain = np.flatnonzero(data > head_threshold(data.astype(np.float32)))
    with pytest.raises(MaskError, match="outside the brain") as info:
        Roi.from_mask("v1", mask).check_on_brain(data, brain)
    assert info.value.kind == "outside-brain"


def test_one_label_of_an_atlas(real_volume):
    data, affine = real_volume
    atlas = np.zeros(data.shape, np.int16)
    atlas[30:34, 30:34, 10:12] = 3
    atlas[40:44, 40:44, 10:12] = 5
    img = nib.Nifti1Image(atlas, affine)
    got = resample_mask(img, data.shape, affine, "five", label=5)
    assert got.sum() == 32 and got[41, 41, 10] and not got[31, 31, 10]


# --------------------------------------------------------------------- GLM


def _design(n: int, drift: int, motion: np.ndarray, task: np.ndarray) -> np.ndarray:
    t = np.arange(n) / 100.0
    cols = [np.ones(n)] + [t**p for p in range(1, drift + 1)] + [motion[:n, k] for k in range(6)]
    cols += [task[:n]]
    return np.column_stack(cols)


@pytest.mark.parametrize("order", [1, 3])
def test_the_incremental_glm_equals_batch_least_squares_at_every_volume(order):
    """With a cubic drift the fit differed from least squares early in a run (a ridge that
    was not small next to the badly scaled drift columns): t 2.50 against 1.85 at volume 10."""
    rng = np.random.default_rng(4)
    n = 60
    task = np.tile([0.0] * 5 + [1.0] * 5, n // 10)
    motion = np.cumsum(rng.normal(0, 0.05, (n, 6)), axis=0)
    drift = [5.0, -3.0, 2.0][:order]
    true = np.array([800.0, *drift, 3, -2, 1, 0.5, -1, 2, 8.0])  # level, drift, motion, task
    x_all = _design(n, order, motion, task)
    y = x_all @ true + rng.normal(0, 1.0, n)
    glm = IncrementalGlm(1, drift_order=order, task=task)
    last_nuisance, task_column = 1 + order + 6, 1 + order + 6
    for i in range(n):
        update = glm.update(i, np.array([y[i]]), motion[i])
        if i + 1 < MOTION_AFTER:
            continue
        x = x_all[: i + 1]
        beta = np.linalg.lstsq(x, y[: i + 1], rcond=None)[0]
        nuisance = x[i, 1:last_nuisance] @ beta[1:last_nuisance]
        assert update.cleaned[0] == pytest.approx(y[i] - nuisance, rel=1e-7)
        expected = 100 * (y[i] - nuisance - beta[0]) / beta[0]
        assert update.activation[0] == pytest.approx(expected, abs=1e-5)
        assert update.task_beta[0, 0] == pytest.approx(beta[task_column], rel=1e-6)
        residual = y[: i + 1] - x @ beta
        sigma2 = residual @ residual / (i + 1 - x.shape[1])
        t = beta[task_column] / np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[task_column, task_column])
        assert update.task_t[0, 0] == pytest.approx(t, rel=1e-5)
    assert update.task_t[0, 0] > 10  # a real effect is found


def test_before_the_motion_columns_enter_only_level_and_drift_are_fitted():
    glm = IncrementalGlm(2, drift_order=1)
    values = [glm.update(i, np.array([100.0 + i, 50.0]), np.zeros(6)) for i in range(5)]
    # a pure linear drift is removed completely once the drift column is in
    assert values[-1].activation[0] == pytest.approx(0, abs=1e-6)
    assert values[-1].cleaned[1] == pytest.approx(50.0)
    assert values[0].activation[0] == pytest.approx(0, abs=1e-6)


def test_the_sample_projects_mask_file_is_the_simulators_activated_box(tmp_path):
    from rtcloud.imaging.dicom import read_dicom_bytes
    from rtcloud.imaging.nifti import dicom_to_nifti
    from rtcloud.server.config import find_project_dir
    from rtcloud.simulate.synthetic import activation_roi, generate_series

    path = generate_series(tmp_path, num_volumes=1)[0]
    func = dicom_to_nifti(read_dicom_bytes(path.read_bytes()))
    mask_img = nib.load(find_project_dir("sample") / "masks" / "activation_roi.nii.gz")
    assert mask_img.shape != func.shape  # drawn on another grid (1.5 mm)
    mask = resample_mask(mask_img, func.shape, func.affine, "roi")
    (x0, x1), (y0, y1), (z0, z1) = activation_roi(func.shape)
    box = np.zeros(func.shape, bool)
    box[x0:x1, y0:y1, z0:z1] = True
    assert np.array_equal(mask, box)
