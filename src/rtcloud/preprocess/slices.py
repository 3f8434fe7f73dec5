"""Three orthogonal slices of a volume, as small 8-bit images for the experimenter's page.

The volume is viewed in RAS order (whatever its voxel order, from its affine): the axial
slice shows right on the right and anterior at the top, the coronal slice right on the right
and superior at the top, the sagittal slice anterior on the right and superior at the top.
Grey levels use a window fixed from the reference volume (so the picture does not flicker
from volume to volume); each region of interest adds its outline (the voxels of the region
with a neighbour outside it in the slice) as one bit of a second 8-bit layer.

Pure module: numpy and nibabel.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from nibabel.orientations import io_orientation
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["SliceViewer", "SliceViews"]


class SliceViewer:
    """Cuts the three slices through a point (see the module docstring).

    Args:
        affine: the functional grid's affine.
        reference: the reference volume (for the grey-level window).
        rois: masks on the functional grid (at most 8 are outlined).
        point: voxel index the slices pass through (default: the first ROI's centre, or the
            volume's centre).
    """

    def __init__(
        self,
        affine: NDArray[np.floating],
        reference: NDArray[np.floating],
        rois: Sequence[NDArray[np.bool_]] = (),
        point: Sequence[int] | None = None,
    ) -> None:
        self._ornt = io_orientation(np.asarray(affine, dtype=float))
        head = reference[reference > reference.mean()]
        values = head if head.size else reference.ravel()
        low, high = np.percentile(values, [1, 99.5])
        self.low, self.high = float(low), float(high)
        if self.high <= self.low:
            self.high = self.low + 1.0
        sizes = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(0))
        # spacing along R, A, S of the canonical view
        self.spacing = [
            float(sizes[int(np.flatnonzero(self._ornt[:, 0] == axis)[0])]) for axis in range(3)
        ]
        canonical_rois = [self._canonical(np.asarray(m)) for m in list(rois)[:8]]
        self.shape = self._canonical(reference).shape
        if point is not None:
            center = self._canonical_index(point)
        elif canonical_rois and canonical_rois[0].any():
            center = [int(round(c)) for c in ndimage.center_of_mass(canonical_rois[0])]
        else:
            center = [s // 2 for s in self.shape]
        self.point = [int(min(max(c, 0), s - 1)) for c, s in zip(center, self.shape, strict=True)]
        self._outlines = [self._outline_views(m) for m in canonical_rois]

    def _canonical(self, volume: NDArray[Any]) -> NDArray[Any]:
        """A view of ``volume`` with axes R, A, S (increasing)."""
        order = [int(np.flatnonzero(self._ornt[:, 0] == axis)[0]) for axis in range(3)]
        view = np.transpose(volume, order)
        flips = tuple(
            slice(None, None, -1) if self._ornt[order[axis], 1] < 0 else slice(None)
            for axis in range(3)
        )
        return view[flips]

    def _canonical_index(self, point: Sequence[int]) -> list[int]:
        order = [int(np.flatnonzero(self._ornt[:, 0] == axis)[0]) for axis in range(3)]
        out = []
        for axis in range(3):
            index = int(point[order[axis]])
            out.append(self.shape[axis] - 1 - index if self._ornt[order[axis], 1] < 0 else index)
        return out

    def _cut(self, canonical: NDArray[Any]) -> list[NDArray[Any]]:
        """Axial, coronal, sagittal slices, rows top to bottom."""
        x, y, z = self.point
        axial = canonical[:, :, z].T[::-1]  # rows: A at the top; columns: R increasing
        coronal = canonical[:, y, :].T[::-1]  # rows: S at the top; columns: R increasing
        sagittal = canonical[x, :, :].T[::-1]  # rows: S at the top; columns: A increasing
        return [axial, coronal, sagittal]

    def _outline_views(self, mask: NDArray[np.bool_]) -> list[NDArray[np.bool_]]:
        views = []
        for cut in self._cut(mask):
            cut = np.asarray(cut, dtype=bool)
            views.append(cut & ~ndimage.binary_erosion(cut, border_value=0))
        return views

    def images(self, volume: NDArray[np.floating]) -> dict[str, Any]:
        """The three slices of ``volume`` (on the functional grid) as a plain dict.

        ``views``: a list of ``{name, width, height, pixel: [mm across, mm down], grey: bytes,
        outline: bytes}`` (row-major, top row first; outline bit k is ROI k), and ``point``:
        the voxel the slices pass through, in R, A, S order.
        """
        canonical = self._canonical(volume)
        scale = 255.0 / (self.high - self.low)
        spacing = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}
        views = []
        for k, (name, cut) in enumerate(
            zip(("axial", "coronal", "sagittal"), self._cut(canonical), strict=True)
        ):
            grey = np.clip((np.asarray(cut, dtype=np.float32) - self.low) * scale, 0, 255)
            outline = np.zeros(cut.shape, dtype=np.uint8)
            for bit, roi_views in enumerate(self._outlines):
                outline |= roi_views[k].astype(np.uint8) << bit
            across, down = spacing[name]
            views.append(
                {
                    "name": name,
                    "width": int(cut.shape[1]),
                    "height": int(cut.shape[0]),
                    "pixel": [self.spacing[across], self.spacing[down]],
                    "grey": np.ascontiguousarray(grey.astype(np.uint8)).tobytes(),
                    "outline": np.ascontiguousarray(outline).tobytes(),
                }
            )
        return {"views": views, "point": list(self.point)}


class SliceViews(Mapping[str, Any]):
    """The slices of one volume, drawn when first looked at.

    A read-only mapping equal to ``viewer.images(volume)`` plus ``rois`` (the outlined
    regions' names). ``result.quality()`` puts one in its record, so the record costs the
    script nothing for its pictures until they are used: through a project server,
    ``webInterface.sendQuality`` draws them on its sending thread (``__page_value__``).
    The volume must not be changed afterwards (the pipeline makes a new array per volume).
    """

    def __init__(
        self, viewer: SliceViewer, volume: NDArray[np.floating], rois: Sequence[str]
    ) -> None:
        self._viewer = viewer
        self._volume = volume
        self._rois = list(rois)
        self._drawn: dict[str, Any] | None = None

    def __page_value__(self) -> dict[str, Any]:
        """The drawn slices (a plain dict). Two threads drawing at once both draw the same."""
        drawn = self._drawn
        if drawn is None:
            drawn = self._viewer.images(self._volume)
            drawn["rois"] = self._rois
            self._drawn = drawn
        return drawn

    def __getitem__(self, key: str) -> Any:
        return self.__page_value__()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.__page_value__())

    def __len__(self) -> int:
        return len(self.__page_value__())

    def __repr__(self) -> str:
        state = "drawn" if self._drawn is not None else "not drawn yet"
        return f"<SliceViews of {len(self._rois)} ROI(s), {state}>"
