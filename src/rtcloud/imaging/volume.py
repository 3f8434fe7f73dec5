"""Volumes from complete DICOM objects: which objects make volume i, and its NIfTI image.

A "volume" is what one TR produced. Scanners write it in one of three layouts:

- ``mosaic``: one classic file per volume holding the slices as tiles (Siemens VB/VE);
- ``enhanced``: one multi-frame file per volume, a frame per slice (Enhanced MR Image
  Storage: Siemens XA "enhanced" export, Philips);
- ``slices``: one classic file per slice (Siemens XA "interoperability" export, GE,
  Philips). The slices of one volume share a temporal position (TemporalPositionIdentifier,
  else AcquisitionNumber; GE: InstanceNumber order) and differ in their position along the
  slice normal.

:class:`VolumeReader` is the one place complete objects go (a watcher's completeness check
that has just parsed a file, and later a DICOM network receiver, call :meth:`VolumeReader.add`);
it keeps the newest parsed datasets (bounded) so that nothing is parsed twice, and a small
header of every slice so that it can tell when all slices of a volume are there.
:func:`volume_image` makes the NIfTI image of a volume (RAS, voxel for voxel as dcm2niix
writes it) with its BIDS sidecar fields.

How many slices a per-slice volume has: the stream's ``slices_per_volume`` when given, else
what the headers declare (GE: LocationsInAcquisition (0021,104F); Philips: (2001,1018);
else ImagesInAcquisition (0020,1002)), else the number of slice positions the first volume
had once a slice of a later volume has arrived.

Pure module: no threads, sockets or event loops; the caller serializes calls.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from rtcloud.errors import InvalidDicomError, ValidationError
from rtcloud.imaging.dicom_read import public_vr
from rtcloud.imaging.frames import classic_view
from rtcloud.imaging.nifti import (
    VolumeImage,
    dicom_to_nifti,
    label_acquisition,
    slice_pixels,
    slices_to_nifti,
    stack_planes,
)
from rtcloud.imaging.sidecar import (
    add_slice_timing,
    bids_sidecar,
    seconds_of_day,
    volume_sidecar,
)

__all__ = [
    "DicomObject",
    "SliceHeader",
    "VolumeImage",
    "VolumeReader",
    "VolumeSlices",
    "layout_of",
    "slice_header",
    "volume_image",
]

#: Datasets kept until taken: at most this many, and beyond the newest at most these bytes.
KEPT_MAX_OBJECTS = 512
KEPT_MAX_BYTES = 32 * 1024 * 1024

_GE_LOCATIONS = (0x0021, 0x104F)
_PHILIPS_SLICES = (0x2001, 0x1018)


@dataclass(frozen=True)
class DicomObject:
    """A complete DICOM object as it was received: its name (a file path, or an instance
    UID for a pushed image), ``key`` telling whether a file is still the one that was read
    (None: it cannot change), its bytes and its parsed dataset.

    The bytes are ``head`` alone, or for a file read in two parts ``head`` followed by
    ``pixels``, the value of its pixel data (the dataset's ``PixelData`` is that very
    object: a large volume is not copied to be parsed).
    """

    name: str
    key: Hashable | None
    head: bytes
    dataset: Dataset
    pixels: bytes | None = None

    @property
    def data(self) -> bytes:
        """All its bytes (joined when it was read in two parts)."""
        return self.head if self.pixels is None else self.head + self.pixels

    @property
    def size(self) -> int:
        return len(self.head) + (0 if self.pixels is None else len(self.pixels))


def layout_of(ds: Dataset) -> str:
    """``mosaic``, ``enhanced`` or ``slices``: how this object's volume is laid out."""
    image_type = ds.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = image_type.split("\\")
    if any(str(value).upper() == "MOSAIC" for value in image_type):
        return "mosaic"
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1 or ("PerFrameFunctionalGroupsSequence" in ds and frames != 1):
        return "enhanced"
    return "slices"  # a classic slice, or an enhanced object of one frame (Siemens XA)


@dataclass(frozen=True)
class SliceHeader:
    """What grouping needs of one per-slice object."""

    name: str
    series: str
    temporal: int | None  # TemporalPositionIdentifier, else AcquisitionNumber (None: neither)
    instance: int
    position: float  # along the slice normal, mm
    declared: int | None  # slices per volume, as the header says
    ipp: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ImagePositionPatient
    acquired: float | None = None  # AcquisitionTime, seconds of the day
    echo: str | None = None  # EchoNumbers, else EchoTime (None: neither)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _private_int(ds: Dataset, tag: tuple[int, int]) -> int | None:
    element = ds.get(tag)
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        if len(value) in (2, 4):
            return int.from_bytes(value, "little")
        try:
            return int(value.decode("ascii").strip(" \0"))
        except (UnicodeDecodeError, ValueError):
            return None
    return _int(value)


#: Text VRs whose raw value can be read here as pydicom reads it (plain ASCII).
_TEXT_VRS = frozenset({"CS", "DS", "IS", "LO", "SH", "TM", "UI", "DA", "DT"})


_TAGS: dict[str, BaseTag] = {}


def _texts(ds: Dataset, keyword: str) -> list[str] | None:
    """The values of a text element, read straight from its raw bytes when they are plain
    ASCII (pydicom's decoding of every element a slice needs costs more than the rest of
    putting a volume together); else through pydicom. None when absent or empty."""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = BaseTag(tag_for_keyword(keyword) or 0)
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    if type(elem) is RawDataElement and isinstance(elem.value, bytes):
        vr = elem.VR or public_vr(int(tag))
        raw = elem.value
        if vr in _TEXT_VRS and raw.isascii():
            values = [v.strip(" \0") for v in raw.decode("ascii").split("\\")]
            return values if any(values) else None
    value = ds[tag].value
    if value in (None, ""):
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _floats(ds: Dataset, keyword: str, count: int) -> list[float]:
    values = _texts(ds, keyword)
    if values is None or len(values) < count:
        raise ValueError(f"{keyword} is missing or has fewer than {count} values")
    return [float(v) for v in values[:count]]


def _first_int(ds: Dataset, keyword: str) -> int | None:
    values = _texts(ds, keyword)
    return _int(values[0]) if values else None


def _cross(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def slice_header(name: str, ds: Dataset) -> SliceHeader:
    """The grouping header of a per-slice object (ValidationError when it has no geometry)."""
    try:
        iop = _floats(ds, "ImageOrientationPatient", 6)
        ipp = _floats(ds, "ImagePositionPatient", 3)
    except ValueError as exc:
        raise ValidationError(
            f"{name}: a per-slice image needs ImagePositionPatient and ImageOrientationPatient "
            f"to be put into a volume ({exc})"
        ) from exc
    normal = _cross(iop[:3], iop[3:])
    position = sum(n * x for n, x in zip(normal, ipp, strict=True))
    manufacturer = " ".join(_texts(ds, "Manufacturer") or []).upper()
    declared = None
    if manufacturer.startswith("GE"):
        declared = _private_int(ds, _GE_LOCATIONS)
    elif manufacturer.startswith("PHILIPS"):
        declared = _private_int(ds, _PHILIPS_SLICES)
    if not declared:
        declared = _first_int(ds, "ImagesInAcquisition")
    temporal = _first_int(ds, "TemporalPositionIdentifier")
    if temporal is None:
        temporal = _first_int(ds, "AcquisitionNumber")
    acquired = _texts(ds, "AcquisitionTime")
    echo = _texts(ds, "EchoNumbers") or _texts(ds, "EchoTime")
    return SliceHeader(
        name,
        (_texts(ds, "SeriesInstanceUID") or [""])[0],
        temporal,
        _first_int(ds, "InstanceNumber") or 0,
        round(position, 4),
        declared if declared and declared > 0 else None,
        (ipp[0], ipp[1], ipp[2]),
        seconds_of_day(acquired[0]) if acquired else None,
        "\\".join(echo) if echo else None,
    )


@dataclass(frozen=True)
class VolumeSlices:
    """The objects of one per-slice volume: ``names`` in slice order when ``complete``, else
    those that arrived; ``expected`` slices (None: not known yet)."""

    index: int
    names: list[str]
    expected: int | None
    complete: bool

    def describe(self) -> str:
        """What arrived, for an error message."""
        expected = "an unknown number of" if self.expected is None else str(self.expected)
        shown = ", ".join(self.names[:8]) + (" ..." if len(self.names) > 8 else "")
        return f"{len(self.names)} of {expected} slices arrived" + (
            f" ({shown})" if self.names else ""
        )


class VolumeReader:
    """Complete DICOM objects of one stream in; their datasets and volumes out.

    Args:
        slices_per_volume: for per-slice series, the slices of a volume (None: from the
            headers, see the module docstring).
    """

    def __init__(self, slices_per_volume: int | None = None) -> None:
        self.slices_per_volume = slices_per_volume
        self.layout: str | None = None
        self._kept: OrderedDict[str, DicomObject] = OrderedDict()
        self._kept_bytes = 0
        self._slices: dict[str, SliceHeader] = {}
        # the same headers indexed for grouping, kept as they come and go, so that finding a
        # volume's slices does not cost more at slice 20000 than at slice 20
        self._by_time: dict[int | None, dict[str, SliceHeader]] = {}
        self._positions: dict[int | None, Counter[float]] = {}  # per temporal value
        self._by_instance: dict[int, dict[str, SliceHeader]] = {}
        self._first_instance: int | None = None  # (None: redo)
        self._declared: Counter[int] = Counter()
        self._echoes: Counter[str] = Counter()
        # per-slice series: each slice's pixels and each volume's sidecar, made as the
        # slices arrive, so that the last slice of a volume leaves little to do
        self._planes: dict[str, np.ndarray] = {}
        self._sidecars: dict[int | None, dict[str, Any]] = {}
        self._geometry: _Geometry | None = None

    # ------------------------------------------------------------ objects in

    def add(self, obj: DicomObject) -> None:
        """A complete object arrived (the hook of watchers and receivers)."""
        if self.layout is None:
            self.layout = layout_of(obj.dataset)
        old = self._kept.pop(obj.name, None)
        if old is not None:
            self._kept_bytes -= old.size
        self._kept[obj.name] = obj
        self._kept_bytes += obj.size
        while len(self._kept) > 1 and (
            len(self._kept) > KEPT_MAX_OBJECTS or self._kept_bytes > KEPT_MAX_BYTES
        ):
            name, evicted = self._kept.popitem(last=False)
            self._kept_bytes -= evicted.size
            self._planes.pop(name, None)
        if self.layout == "slices" and layout_of(obj.dataset) == "slices":
            self._add_slice(obj)

    def _add_slice(self, obj: DicomObject) -> None:
        ds = classic_view(obj.dataset)
        self._drop_header(obj.name)
        try:
            header = slice_header(obj.name, ds)
        except ValidationError:
            return
        self._slices[obj.name] = header
        self._by_time.setdefault(header.temporal, {})[obj.name] = header
        self._positions.setdefault(header.temporal, Counter())[header.position] += 1
        self._by_instance.setdefault(header.instance, {})[obj.name] = header
        if self._first_instance is not None and header.instance < self._first_instance:
            self._first_instance = header.instance
        if header.declared:
            self._declared[header.declared] += 1
        if header.echo is not None:
            self._echoes[header.echo] += 1
        try:
            self._planes[obj.name] = slice_pixels(ds)
            if self._geometry is None:
                self._geometry = _Geometry.of(ds)
            if header.temporal not in self._sidecars:
                if len(self._sidecars) >= 64:
                    self._sidecars.clear()
                self._sidecars[header.temporal] = bids_sidecar(ds, (int(ds.Columns), int(ds.Rows)))
        except ValidationError:
            self._planes.pop(obj.name, None)

    def knows(self, name: str) -> bool:
        """Whether a slice header of ``name`` is known (it was complete once). A plain dict
        look-up: safe without the caller's lock."""
        return name in self._slices

    def _drop_header(self, name: str) -> None:
        header = self._slices.pop(name, None)
        if header is None:
            return
        same_time = self._by_time.get(header.temporal, {})
        same_time.pop(name, None)
        positions = self._positions.get(header.temporal, Counter())
        positions[header.position] -= 1
        if positions[header.position] <= 0:
            del positions[header.position]
        if not same_time:
            self._by_time.pop(header.temporal, None)
            self._positions.pop(header.temporal, None)
        same_instance = self._by_instance.get(header.instance, {})
        same_instance.pop(name, None)
        if not same_instance:
            self._by_instance.pop(header.instance, None)
            if header.instance == self._first_instance:
                self._first_instance = None
        if header.declared:
            self._declared[header.declared] -= 1
            if self._declared[header.declared] <= 0:
                del self._declared[header.declared]
        if header.echo is not None:
            self._echoes[header.echo] -= 1
            if self._echoes[header.echo] <= 0:
                del self._echoes[header.echo]

    def forget(self, name: str) -> None:
        """``name`` is gone (deleted, or replaced by a file not yet complete)."""
        self._drop_header(name)
        self._planes.pop(name, None)
        old = self._kept.pop(name, None)
        if old is not None:
            self._kept_bytes -= old.size

    def take(self, name: str, key: Hashable | None) -> DicomObject | None:
        """The object of ``name`` for the caller to keep (and change its dataset), once; None
        when it is not kept or ``key`` says the file changed since it was read."""
        obj = self._kept.get(name)
        if obj is None or (obj.key is not None and obj.key != key):
            return None
        del self._kept[name]
        self._kept_bytes -= obj.size
        return obj

    def get(self, name: str, key: Hashable | None) -> DicomObject | None:
        """The kept object of ``name`` without taking it (read it only)."""
        obj = self._kept.get(name)
        if obj is None or (obj.key is not None and obj.key != key):
            return None
        return obj

    # ------------------------------------------------------------ volumes out

    def _time_keys(self) -> list[int] | None:
        """The temporal values in order, when they tell the volumes apart; else None."""
        if None in self._by_time:
            return None
        if len(self._by_time) == 1:
            ((time, only),) = self._by_time.items()
            if len(self._positions[time]) < len(only):
                return None  # one time for repeated positions: not a volume per time
        return sorted(t for t in self._by_time if t is not None)

    def _group(self, index: int, expected: int | None) -> list[SliceHeader]:
        """The headers of volume ``index`` that arrived."""
        keys = self._time_keys()
        if keys is not None:
            return list(self._by_time[keys[index]].values()) if index < len(keys) else []
        # no temporal attribute that varies (GE): InstanceNumber order, a volume at a time
        if expected is None:  # everything so far is one volume
            if index:
                return []
            return [h for same in self._by_instance.values() for h in same.values()]
        if not self._by_instance:
            return []
        if self._first_instance is None:
            self._first_instance = min(self._by_instance)
        start = self._first_instance + index * expected
        return [
            h
            for number in range(start, start + expected)
            for h in self._by_instance.get(number, {}).values()
        ]

    def _expected_from_headers(self) -> int | None:
        return max(self._declared) if self._declared else None

    def _expected(self) -> int | None:
        if self.slices_per_volume:
            return int(self.slices_per_volume)
        return self._expected_from_headers()

    def slices(self, index: int) -> VolumeSlices:
        """The slices of volume ``index`` that arrived, and whether that is all of them.

        Raises InvalidDicomError once slices of more than one echo have arrived: a volume
        would mix echoes (or, numbered by instance, be an echo of another volume).
        """
        if len(self._echoes) > 1:
            raise InvalidDicomError(
                f"the slices of this series have {len(self._echoes)} echoes "
                f"({', '.join(sorted(self._echoes))}): a multi-echo series, which rtcloud does "
                "not assemble into volumes yet; read each file with getImageData"
            )
        expected = self._expected()
        if expected is None:  # once volume 1 has begun, volume 0's positions are all of them
            keys = self._time_keys()
            if keys is not None and len(keys) > 1:
                expected = len(self._positions[keys[0]])
        group = self._group(index, expected)
        if not group:
            return VolumeSlices(index, [], expected, False)
        group.sort(key=lambda h: (h.position, h.instance))
        names = [h.name for h in group]
        positions = {h.position for h in group}
        complete = expected is not None and len(positions) >= expected and len(group) >= expected
        return VolumeSlices(index, names, expected, complete)

    def assemble(self, slices: VolumeSlices) -> VolumeImage | None:
        """The image of a complete per-slice volume from what its slices left on arrival
        (pixels, positions, times); None when some of that is gone (then convert the
        datasets with :func:`volume_image`)."""
        if not slices.complete or self._geometry is None:
            return None
        headers = [self._slices.get(name) for name in slices.names]
        planes = [self._planes.get(name) for name in slices.names]
        known = [h for h in headers if h is not None]
        arrays = [p for p in planes if p is not None]
        if len(known) != len(headers) or len(arrays) != len(planes):
            return None
        sidecar = self._sidecars.get(known[0].temporal)
        if sidecar is None:
            return None
        geometry = self._geometry
        image = stack_planes(
            arrays,
            [np.array(h.ipp) for h in known],
            geometry.iop,
            geometry.spacing,
            geometry.thickness,
            VolumeImage,
        )
        sidecar = dict(sidecar)
        add_slice_timing(sidecar, [h.acquired for h in known], [h.position for h in known])
        assert isinstance(image, VolumeImage)
        image.sidecar = sidecar
        _label(image)
        return image


@dataclass(frozen=True)
class _Geometry:
    """What the slices of a series share: orientation, pixel spacing, slice thickness."""

    iop: np.ndarray
    spacing: tuple[float, float]
    thickness: float

    @classmethod
    def of(cls, ds: Dataset) -> _Geometry:
        try:
            iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            rows, cols = (float(v) for v in ds.PixelSpacing)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValidationError(f"a slice lacks its geometry: {exc}") from exc
        thickness = float(ds.get("SpacingBetweenSlices") or 0) or float(
            ds.get("SliceThickness") or 1
        )
        return cls(iop, (rows, cols), thickness)


def _label(image: VolumeImage) -> None:
    """The header fields dcm2niix fills from the acquisition, from the image's sidecar."""
    tr = image.sidecar.get("RepetitionTime")
    label_acquisition(
        image,
        float(tr) if isinstance(tr, (int, float)) else None,
        image.sidecar.get("InPlanePhaseEncodingDirectionDICOM"),
    )


def volume_image(datasets: Sequence[Dataset]) -> VolumeImage:
    """The NIfTI image of one volume (RAS, dcm2niix's voxel order) with its BIDS sidecar.

    ``datasets``: the one object of a mosaic or enhanced volume, or the slices of a
    per-slice volume in slice order. The image's ``sidecar`` attribute holds the sidecar
    fields (see :func:`rtcloud.imaging.sidecar.volume_sidecar`).
    """
    if not datasets:
        raise ValidationError("a volume needs at least one DICOM object")
    datasets = [classic_view(ds) for ds in datasets]  # one-frame enhanced objects: slices
    if len(datasets) == 1 and layout_of(datasets[0]) != "slices":
        image = dicom_to_nifti(datasets[0], VolumeImage)
    else:
        image = slices_to_nifti(datasets, VolumeImage)
    assert isinstance(image, VolumeImage)
    image.sidecar = volume_sidecar(datasets, image.shape)
    _label(image)
    return image
