"""FD, DVARS, running tSNR and smoothing against their definitions and other implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtcloud.preprocess.metrics import RunningTsnr, dvars, framewise_displacement
from rtcloud.preprocess.smooth import gaussian_smooth, voxel_sizes


def test_framewise_displacement_is_powers_definition():
    previous = np.array([0.1, -0.2, 0.3, 0.5, -0.25, 1.0])
    current = np.array([0.4, -0.1, 0.0, 0.0, 0.25, 1.5])
    # 0.3 + 0.1 + 0.3 mm, then 0.5 + 0.5 + 0.5 degrees as arcs of a 50 mm sphere
    expected = 0.7 + 50 * math.radians(1.5)
    assert framewise_displacement(previous, current) == pytest.approx(expected)
    assert framewise_displacement(None, current) == 0.0


def test_dvars_is_the_rms_of_the_change_in_mode_1000_units():
    rng = np.random.default_rng(1)
    a = rng.normal(500, 10, (8, 8, 4)).astype(np.float32)
    b = a + rng.normal(0, 5, a.shape).astype(np.float32)
    brain = np.flatnonzero(a > 0)
    scale = 1000 / float(np.median(a))
    expected = scale * np.sqrt(np.mean((b.astype(float) - a) ** 2))
    assert dvars(a, b, brain, scale) == pytest.approx(expected, rel=1e-6)
    assert dvars(None, b, brain, scale) == 0.0


def test_running_tsnr_equals_mean_over_std_of_the_stack():
    rng = np.random.default_rng(2)
    stack = rng.normal(1000, 20, (30, 6, 6, 3))
    brain = np.arange(6 * 6 * 3)
    running = RunningTsnr(brain)
    assert math.isnan(running.median())
    for volume in stack:
        running.update(volume)
    expected = stack.mean(0) / stack.std(0, ddof=1)
    np.testing.assert_allclose(running.voxels(), expected.ravel(), rtol=1e-9)
    assert running.median() == pytest.approx(float(np.median(expected)))


def test_smoothing_by_fwhm_matches_simpleitks_gaussian_in_mm():
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(3)
    volume = rng.normal(0, 1, (40, 40, 24)).astype(np.float32)
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    ours = gaussian_smooth(volume, affine, 6.0)
    image = sitk.GetImageFromArray(volume.transpose(2, 1, 0).copy())
    image.SetSpacing([3.0, 3.0, 4.0])
    sigma_mm = 6.0 / math.sqrt(8 * math.log(2))
    # ITK's recursive (Deriche) Gaussian takes sigma in mm through the image spacing
    theirs_image = sitk.SmoothingRecursiveGaussian(image, [sigma_mm] * 3)
    theirs = sitk.GetArrayFromImage(theirs_image).transpose(2, 1, 0)
    inner = (slice(6, -6), slice(6, -6), slice(5, -5))
    spread = float(theirs[inner].std())
    np.testing.assert_allclose(ours[inner], theirs[inner], atol=0.05 * spread)
    assert abs(float(ours[inner].std()) - spread) < 0.02 * spread


def test_smoothing_a_point_gives_the_asked_fwhm_along_each_axis():
    volume = np.zeros((61, 61, 41), dtype=np.float32)
    volume[30, 30, 20] = 1.0
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    out = gaussian_smooth(volume, affine, 8.0)
    profiles = [out[:, 30, 20], out[30, :, 20], out[30, 30, :]]
    for profile, size in zip(profiles, voxel_sizes(affine), strict=True):
        # variance of the profile (a sampled Gaussian) gives its FWHM
        positions = np.arange(profile.size) * size
        weights = profile / profile.sum()
        mean = (positions * weights).sum()
        sigma = math.sqrt(((positions - mean) ** 2 * weights).sum())
        assert sigma * math.sqrt(8 * math.log(2)) == pytest.approx(8.0, rel=0.03)


def test_smoothing_refuses_a_negative_fwhm_and_copies_at_zero():
    volume = np.ones((4, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="fwhm"):
        gaussian_smooth(volume, np.eye(4), -1)
    out = gaussian_smooth(volume, np.eye(4), 0)
    assert out is not volume and np.array_equal(out, volume)
