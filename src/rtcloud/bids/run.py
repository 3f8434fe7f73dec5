"""BidsRun: the volumes of one fMRI run, gathered one incremental at a time.

A run keeps what its volumes share once (entities, sidecar metadata, NIfTI header, dataset
description, README, events) and each volume as a 3-D array that *is* the incremental's data
(a view, not a copy), plus the few metadata fields that change per volume (AcquisitionTime
...). Appending is a constant amount of work whatever the run's length: a few header fields
and the metadata dictionary are compared with the run's, and one array reference is stored.
RT-Cloud's run re-stacked its arrays, so appending grew slower with every volume.

An incremental that does not fit (another shape, voxel size, affine, TR, entity or sidecar
value) is refused with a :class:`~rtcloud.errors.MetadataMismatchError` naming the field,
and the run stays as it was.

Pure module: no threads, sockets, clocks or event loops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import nibabel as nib
import numpy as np

from rtcloud.bids.common import (
    VOLUME_METADATA,
    _values_equal,
    correct3DHeaderTo4D,
    events_equal,
    events_to_tsv,
    metadataAppendCompatible,
    niftiHeadersAppendCompatible,
)
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.errors import MetadataMismatchError

__all__ = ["BidsRun"]

#: Entities whose values are numbers (``run-01`` and ``run-1`` name the same run).
_INDEX_ENTITIES = ("run", "echo", "chunk", "flip", "inv")


def _same_entity(name: str, a: Any, b: Any) -> bool:
    if name in _INDEX_ENTITIES:
        try:
            return int(a) == int(b)
        except (TypeError, ValueError):
            pass
    return str(a) == str(b)


_ABSENT = object()


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_TIME = re.compile(r"^(\d{2})(:?)(\d{2}):?(\d{2})(\.\d+)?$")


def _shift_time(text: Any, seconds: float) -> Any:
    """A time of day (``HH:MM:SS.ffffff`` or DICOM's ``HHMMSS.ffffff``) ``seconds`` later,
    written the same way; anything else unchanged."""
    match = _TIME.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return text
    hours, sep, minutes, secs, fraction = match.groups()
    start = int(hours) * 3600 + int(minutes) * 60 + int(secs) + float(fraction or 0)
    micro = round((start + seconds) * 1_000_000) % (86400 * 1_000_000)
    whole, us = divmod(micro, 1_000_000)
    digits = len(fraction) - 1 if fraction else (6 if us else 0)
    rest = f".{us:06d}"[: digits + 1] if digits else ""
    return f"{whole // 3600:02d}{sep}{whole // 60 % 60:02d}{sep}{whole % 60:02d}{rest}"


def _later_volume(fields: Mapping[str, Any], t: int, tr: float | None) -> dict[str, Any]:
    """The own fields of volume ``t`` of a multi-volume image whose first volume has
    ``fields``: acquired ``t`` TRs later, with the acquisition number ``t`` higher."""
    out = dict(fields)
    if tr is not None and "AcquisitionTime" in out:
        out["AcquisitionTime"] = _shift_time(out["AcquisitionTime"], t * tr)
    number = out.get("AcquisitionNumber")
    if isinstance(number, int) or (isinstance(number, str) and number.strip().isdigit()):
        out["AcquisitionNumber"] = type(number)(int(number) + t)
    return out


class BidsRun:
    """The volumes of one run. ``BidsRun(subject='01', task='rest', run=1)``: entities that
    every appended incremental must carry (more are taken from the first one)."""

    def __init__(self, **entities: Any) -> None:
        if isinstance(entities.get("run"), str) and entities["run"].isdigit():
            entities["run"] = int(entities["run"])
        self._entities: dict[str, Any] = dict(entities)
        self._volumes: list[np.ndarray] = []
        self._volume_metadata: list[dict[str, Any]] = []
        self._header: Any = None
        self._affine: np.ndarray | None = None
        self._image_class: type = nib.Nifti1Image
        self._metadata: dict[str, Any] = {}
        self._description: dict[str, Any] | None = None
        self._readme: str | None = None
        self._events: Any = None
        self._varying: set[str] = set()  # fields some volume has its own value of

    # ------------------------------------------------------------ appending

    def appendIncremental(self, incremental: BidsIncremental, validateAppend: bool = True) -> None:
        """Add the volume(s) of ``incremental`` at the end of the run.

        Raises:
            MetadataMismatchError: the incremental does not belong to this run (the message
                names the field); the run is left unchanged.
        """
        if not isinstance(incremental, BidsIncremental):
            raise TypeError(
                f"appendIncremental takes a BidsIncremental, got {type(incremental).__name__}"
            )
        metadata = incremental.getImageMetadata()
        for name, value in self._entities.items():
            if name in metadata and not _same_entity(name, value, metadata[name]):
                raise MetadataMismatchError(
                    f"entity {name!r} of the incremental ({metadata[name]!r}) differs from "
                    f"the run's ({value!r}); it belongs to another run"
                )
        events = incremental._events  # None: the default, empty table
        if self._volumes and validateAppend:
            ok, why = niftiHeadersAppendCompatible(self._header, incremental.image.header)
            if not ok:
                raise MetadataMismatchError(f"incremental does not fit the run: {why}")
            ok, why = metadataAppendCompatible(self._metadata, metadata)
            if not ok:
                raise MetadataMismatchError(f"incremental does not fit the run: {why}")
            if incremental.readme != self._readme:
                raise MetadataMismatchError("incremental does not fit the run: README differs")
            if incremental.datasetDescription != self._description:
                raise MetadataMismatchError(
                    "incremental does not fit the run: dataset description differs"
                )
            events = self._merged_events(events)
        data = incremental.getImageData()
        first = not self._volumes
        # what is this volume's own: the fields that change per volume, and any field whose
        # value is not the run's (a DICOM header's WindowCenter, say)
        own = {
            k: v
            for k, v in metadata.items()
            if k in VOLUME_METADATA
            or (not first and not _values_equal(self._metadata.get(k, _ABSENT), v))
        }
        if first:
            self._header = incremental.image.header.copy()
            self._affine = np.array(incremental.image.affine)
            self._image_class = type(incremental.image)
            self._metadata = {k: v for k, v in metadata.items() if k not in VOLUME_METADATA}
            self._description = dict(incremental.datasetDescription)
            self._readme = incremental.readme
            for name in ("subject", "session", "task", "run", "acquisition", "suffix"):
                if name in metadata and name not in self._entities:
                    self._entities[name] = metadata[name]
        self._varying.update(k for k in own if k not in VOLUME_METADATA)
        tr = _seconds(self._metadata.get("RepetitionTime"))
        for t in range(data.shape[3]):
            self._volumes.append(data[..., t])
            self._volume_metadata.append(own if t == 0 else _later_volume(own, t, tr))
        if events is not None:
            self._events = events

    def _merged_events(self, events: Any) -> Any:
        """The run's events after taking an incremental's table (one must extend the other)."""
        if events is None or self._events is None:
            return events if self._events is None else None
        if len(events) >= len(self._events):
            longer, shorter = events, self._events
        else:
            longer, shorter = self._events, events
        if not events_equal(longer.iloc[: len(shorter)].reset_index(drop=True), shorter):
            raise MetadataMismatchError(
                "incremental does not fit the run: its events table does not continue the "
                "run's (the rows the run already has differ)"
            )
        return longer if longer is events else None

    # ------------------------------------------------------------ reading

    def numIncrementals(self) -> int:
        """Number of volumes in the run."""
        return len(self._volumes)

    def __len__(self) -> int:
        return len(self._volumes)

    def getRunEntities(self) -> dict[str, Any]:
        return dict(self._entities)

    def _image(self, data: np.ndarray) -> Any:
        header = self._header.copy()
        image = self._image_class(data, self._affine, header)
        image.header.set_data_shape(data.shape)
        correct3DHeaderTo4D(image, float(self._metadata["RepetitionTime"]))
        return image

    def _incremental(self, data: np.ndarray, fields: Mapping[str, Any]) -> BidsIncremental:
        incremental = BidsIncremental(
            self._image(data), {**self._metadata, **fields}, self._description
        )
        incremental.readme = self._readme or incremental.readme
        if self._events is not None:
            incremental.events = self._events.copy()
        return incremental

    def getIncremental(self, index: int) -> BidsIncremental:
        """Volume ``index`` (negative counts from the end) as a one-volume incremental."""
        count = len(self._volumes)
        if not -count <= index < count:
            raise IndexError(f"volume index {index} out of range for a run of {count} volumes")
        volume = self._volumes[index]
        return self._incremental(volume[..., np.newaxis], self._volume_metadata[index])

    def asSingleIncremental(self) -> BidsIncremental | None:
        """The whole run as one 4-D incremental (None for an empty run)."""
        if not self._volumes:
            return None
        return self._incremental(np.stack(self._volumes, axis=-1), self._volume_metadata[0])

    def iter_volumes(self) -> Iterator[np.ndarray]:
        """The 3-D arrays of the run's volumes, in order (not copies)."""
        return iter(self._volumes)

    def run_image_header(self) -> Any:
        """The NIfTI header of the whole run as one 4-D image (a new header object)."""
        header = self._header.copy()
        header.set_data_shape((*self._volumes[0].shape, len(self._volumes)))
        header.set_data_dtype(self._volumes[0].dtype)
        zooms = list(header.get_zooms()[:3]) + [float(self._metadata["RepetitionTime"])]
        header.set_zooms(zooms)
        header.set_sform(self._affine, int(header["sform_code"]) or 1)
        header.set_qform(self._affine, int(header["qform_code"]) or 1)
        return header

    def run_metadata(self) -> dict[str, Any]:
        """Entities and sidecar fields shared by all the run's volumes."""
        return {k: v for k, v in self._metadata.items() if k not in self._varying}

    def volume_metadata(self, index: int) -> dict[str, Any]:
        """The fields of volume ``index`` that are its own (AcquisitionTime ..., and any
        field whose value differs from the run's)."""
        return dict(self._volume_metadata[index])

    @property
    def readme(self) -> str | None:
        return self._readme

    @property
    def datasetDescription(self) -> dict[str, Any] | None:
        return None if self._description is None else dict(self._description)

    @property
    def events(self) -> Any:
        """The run's events table, or None when no incremental carried one."""
        return self._events

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BidsRun):
            return NotImplemented
        if self._entities != other._entities or self._metadata != other._metadata:
            return False
        if len(self._volumes) != len(other._volumes):
            return False
        if self._volume_metadata != other._volume_metadata:
            return False
        if (self._readme, self._description) != (other._readme, other._description):
            return False
        if (self._events is None) != (other._events is None):
            return False
        if self._events is not None and events_to_tsv(self._events) != events_to_tsv(
            other._events
        ):
            return False
        if self._volumes:
            ok, _ = niftiHeadersAppendCompatible(self._header, other._header)
            if not ok:
                return False
        return all(
            np.array_equal(a, b) for a, b in zip(self._volumes, other._volumes, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        entities = ", ".join(f"{k}={v!r}" for k, v in self._entities.items())
        return f"<BidsRun {entities}: {len(self._volumes)} volumes>"
