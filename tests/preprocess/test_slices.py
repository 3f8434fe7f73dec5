"""The slice viewer shows each side where it is, whatever the voxel order of the volume."""

from __future__ import annotations

import numpy as np
import pytest

from rtcloud.preprocess.slices import SliceViewer


def _views(affine: np.ndarray, volume: np.ndarray, rois=()) -> dict:
    viewer = SliceViewer(affine, volume, rois, point=(10, 12, 8))
    assert viewer.high > viewer.low
    viewer.low, viewer.high = 0.0, 1000.0  # this volume has no head to take a window from
    out = viewer.images(volume)
    return {
        v["name"]: (
            np.frombuffer(v["grey"], np.uint8).reshape(v["height"], v["width"]),
            np.frombuffer(v["outline"], np.uint8).reshape(v["height"], v["width"]),
            v["pixel"],
        )
        for v in out["views"]
    }


@pytest.mark.parametrize("flip_x", [False, True])
def test_right_anterior_and_superior_are_where_the_views_say(flip_x):
    shape = (20, 24, 16)
    volume = np.full(shape, 100.0)
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    if flip_x:  # an LAS volume: voxel x runs towards the left
        affine[0, 0] = -3.0
    # a bright voxel right (+x world), anterior and superior of the slice point
    right = 14 if not flip_x else 6
    volume[right, 12, 8] = 1000.0  # right of the point (10, 12, 8)
    volume[10, 20, 8] = 1000.0  # anterior
    volume[10, 12, 14] = 1000.0  # superior
    views = _views(affine, volume)
    axial, _, pixel = views["axial"]
    bright = np.argwhere(axial == axial.max())
    # axial: rows top = anterior, columns increase to the right
    rows, cols = bright[:, 0], bright[:, 1]
    point_x = 9 if flip_x else 10  # the slice point in R order (voxel 10 of 20, flipped: 9)
    expected = {(24 - 1 - 12, point_x + 4), (24 - 1 - 20, point_x)}
    assert {(r, c) for r, c in zip(rows, cols, strict=True)} == expected
    assert pixel == [3.0, 3.0]
    sagittal, _, pixel = views["sagittal"]
    bright = {tuple(x) for x in np.argwhere(sagittal == sagittal.max())}
    assert bright == {(16 - 1 - 8, 20), (16 - 1 - 14, 12)}  # anterior right, superior up
    assert pixel == [3.0, 4.0]


def test_roi_outlines_are_bits_of_the_second_layer():
    shape = (20, 24, 16)
    volume = np.full(shape, 100.0)
    a = np.zeros(shape, bool)
    a[8:13, 10:15, 6:11] = True
    b = np.zeros(shape, bool)
    b[2:5, 2:5, 7:10] = True
    views = _views(np.eye(4), volume, [a, b])
    _, outline, _ = views["axial"]
    assert (outline & 1).sum() == 16  # the ring of a 5x5 square
    assert ((outline & 2) > 0).sum() == 8  # the ring of a 3x3 square
    assert outline[24 - 1 - 12, 10] == 0  # the square's inside is not drawn
