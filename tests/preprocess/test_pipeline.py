"""The pipeline on the real series: values and stage times, bad input flagged, the run going on."""

from __future__ import annotations

import json
import math

import msgpack
import nibabel as nib
import numpy as np
import pytest

from rtcloud.errors import MaskError, PreprocessError, RegistrationError, VolumeError
from rtcloud.preprocess import STAGES, Pipeline
from rtcloud.preprocess.metrics import framewise_displacement
from rtcloud.preprocess.slices import SliceViews


def _roi_images(img) -> dict:
    a = np.zeros(img.shape, np.uint8)
    a[36:48, 36:48, 12:18] = 1
    b = np.zeros(img.shape, np.uint8)
    b[20:30, 30:40, 10:15] = 1
    return {"a": nib.Nifti1Image(a, img.affine), "b": nib.Nifti1Image(b, img.affine)}


def test_every_volume_gets_motion_quality_rois_and_stage_times(real_series, tmp_path):
    ticks = iter(range(10**6))
    pipe = Pipeline(rois=_roi_images(real_series[0]), tr=1.5, clock=lambda: next(ticks) / 1000)
    results = [pipe.process(img) for img in real_series]
    first, second = results[0], results[1]
    assert "setup" in first.timings_ms
    for result in results:
        assert result.usable and not result.problems
        assert set(STAGES) <= set(result.timings_ms)
        assert all(ms == pytest.approx(1.0) for ms in result.timings_ms.values())  # one tick each
        assert set(result.roi_means) == {"a", "b"}
    np.testing.assert_allclose(first.motion, 0, atol=1e-6)
    assert abs(second.motion[2]) > 0.3  # this series moves ~0.47 mm along z
    assert second.fd == pytest.approx(framewise_displacement(first.motion, second.motion))
    assert second.dvars > 0 and math.isnan(first.tsnr) and results[-1].tsnr > 10
    assert results[-1].volumes == 11
    assert results[-1].usable_minutes == pytest.approx((11 - results[-1].volumes_over) * 1.5 / 60)
    quality = results[-1].quality()
    assert isinstance(quality["slices"], SliceViews)  # drawn when first looked at
    plain = {**quality, "slices": dict(quality["slices"])}
    assert len(msgpack.packb(plain)) < 20000
    drawn = results[-1]._pipeline.viewer.images(results[-1].realigned)  # what it draws
    assert plain["slices"]["views"] == drawn["views"]
    assert plain["slices"]["point"] == drawn["point"]
    json.dumps({k: v for k, v in quality.items() if k != "slices"}, allow_nan=False)
    assert [v["name"] for v in quality["slices"]["views"]] == ["axial", "coronal", "sagittal"]


def test_bad_volumes_are_flagged_and_the_run_goes_on(real_series):
    pipe = Pipeline(rois=_roi_images(real_series[0]))
    img = real_series[1]
    data = np.asarray(img.dataobj, np.float32)
    nan = data.copy()
    nan[10, 10, 10] = np.nan
    moved = img.affine.copy()
    moved[2, 3] += 5
    inputs = [
        real_series[0],
        nib.Nifti1Image(data[:, :, :20], img.affine),  # shape
        nib.Nifti1Image(data, moved),  # affine
        nib.Nifti1Image(nan, img.affine),  # NaN
        nib.Nifti1Image(np.zeros_like(data), img.affine),  # all zero
        "not an image",
        real_series[1],
    ]
    results = [pipe.process(x) for x in inputs]
    kinds = [[p.kind for p in r.problems] for r in results]
    assert kinds == [[], ["shape"], ["affine"], ["nan"], ["zero"], ["unreadable"], []]
    for bad in results[1:6]:
        assert not bad.usable and math.isnan(bad.fd) and math.isnan(bad.roi_means["a"])
        assert isinstance(bad.problems[0], VolumeError)
        with pytest.raises(VolumeError):
            bad.raise_for_problems()
        assert bad.quality()["problems"][0]["message"]
    last = results[-1]
    assert last.usable and last.index == 6
    # FD of the good volume is taken against the last usable one (volume 0)
    assert last.fd == pytest.approx(framewise_displacement(results[0].motion, last.motion))


def test_a_registration_that_does_not_converge_is_flagged(real_series):
    pipe = Pipeline(max_points=5000)
    pipe.process(real_series[0])
    assert pipe.corrector is not None
    pipe.corrector.max_iterations = 1
    result = pipe.process(real_series[1])
    assert [p.kind for p in result.problems] == ["not-converged"]
    assert isinstance(result.problems[0], RegistrationError)
    assert result.usable  # values from the last estimate, flagged


def test_an_unusable_mask_is_reported_and_the_other_rois_go_on(real_series):
    img = real_series[0]
    rois = _roi_images(img)
    rois["far"] = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.diag([1, 1, 1, 1.0]) * 1)
    rois["far"].affine[:3, 3] = 900
    rois["far"] = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), rois["far"].affine)
    rois["missing"] = "/nonexistent/v1.nii.gz"
    pipe = Pipeline(rois=rois)
    first = pipe.process(img)
    assert [(p.kind, type(p)) for p in first.setup_problems] == [
        ("no-overlap", MaskError),
        ("missing", MaskError),
    ]
    assert [p["kind"] for p in first.quality(slices=False)["problems"]] == [
        "no-overlap",
        "missing",
    ]
    second = pipe.process(real_series[1])
    assert not second.setup_problems  # reported once
    assert math.isnan(second.roi_means["far"]) and math.isfinite(second.roi_means["a"])
    assert [p.kind for p in pipe.problems] == ["no-overlap", "missing"]


def test_the_reference_can_be_a_later_volume_or_a_file(real_series, tmp_path):
    pipe = Pipeline(reference=2)
    early = pipe.process(real_series[0])
    assert not early.usable and early.problems[0].kind == "reference"
    pipe.process(real_series[1])
    third = pipe.process(real_series[2])
    np.testing.assert_allclose(third.motion, 0, atol=1e-6)
    fourth = pipe.process(real_series[3])
    path = tmp_path / "ref.nii.gz"
    nib.save(real_series[2], path)
    from_file = Pipeline(reference=str(path))
    result = from_file.process(real_series[3])
    assert "setup" in result.timings_ms
    np.testing.assert_allclose(result.motion, fourth.motion, atol=1e-4)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="fwhm"):
        Pipeline(fwhm=-2)
    with pytest.raises(ValueError, match="fd_threshold"):
        Pipeline(fd_threshold=0)
    with pytest.raises(VolumeError, match="does not exist"):
        Pipeline(reference="/nonexistent/ref.nii")


def test_the_simulators_head_motion_is_what_the_pipeline_reports(tmp_path):
    from rtcloud.imaging.dicom import read_dicom_bytes
    from rtcloud.imaging.nifti import dicom_to_nifti
    from rtcloud.simulate.synthetic import generate_series, head_motion

    paths = generate_series(tmp_path, num_volumes=28, motion=1.0)
    pipe = Pipeline(fwhm=0)
    for index, path in enumerate(paths):
        result = pipe.process(dicom_to_nifti(read_dicom_bytes(path.read_bytes())))
        if index in (0, 5, 17, 25, 27):
            np.testing.assert_allclose(result.motion, head_motion(index, 1.0), atol=0.1)
    assert result.volumes_over == 2  # into the sudden movement at 25 and out of it at 27


def test_a_volume_that_cannot_be_the_reference_is_flagged_and_the_next_is_tried(real_series):
    """A flat first volume, or a slab too thin to register to, ended the run with a bare
    ValueError from process(), where every other bad volume is flagged."""
    affine = real_series[0].affine
    first = np.asarray(real_series[0].dataobj)
    for bad in (np.full(first.shape, 100, np.int16), first[:, :, 12:15].copy()):
        pipeline = Pipeline(fwhm=0)
        result = pipeline.process(nib.Nifti1Image(bad, affine), 0)
        assert not result.usable and [p.kind for p in result.problems] == ["reference"]
        assert "cannot be the reference" in str(result.problems[0])
        assert pipeline.process(real_series[1], 1).usable  # the next volume is the reference


def test_a_reference_image_of_several_volumes_is_a_clear_error(real_series):
    four_d = nib.Nifti1Image(
        np.stack([np.asarray(img.dataobj) for img in real_series[:3]], -1), real_series[0].affine
    )
    pipeline = Pipeline(reference=four_d, fwhm=0)
    with pytest.raises(PreprocessError, match=r"one 3-D volume.*four_to_three"):
        pipeline.process(real_series[1])
