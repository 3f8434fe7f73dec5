"""BIDS sidecar metadata of a DICOM image: the acquisition fields analysis tools read.

``bids_sidecar(ds, shape)`` gives the JSON fields that BIDS users take from a converter's
sidecar (dcm2niix's is the reference), in BIDS units: seconds for RepetitionTime, EchoTime,
SliceTiming and the echo spacing, degrees for FlipAngle. Directions (PhaseEncodingDirection)
refer to the voxel axes of the NIfTI image :func:`rtcloud.imaging.nifti.dicom_to_nifti`
makes of the same dataset, which are dcm2niix's: ``i`` along a DICOM row, ``j`` up the rows,
``k`` through the slices. Where a vendor does not record the polarity of the phase encoding,
only ``PhaseEncodingAxis`` is given, as dcm2niix does.

Only acquisition parameters are taken: nothing that names or dates the participant, the site
or the operator (those are BIDS' participants.tsv business, and anonymization removes them).

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from rtcloud.imaging.csa import csa_image_tags
from rtcloud.imaging.frames import FLATTENED

__all__ = [
    "add_slice_timing",
    "bids_sidecar",
    "seconds_of_day",
    "siemens_csa_image_header",
    "volume_sidecar",
]

#: DICOM keyword -> sidecar key, for values copied as they are (numbers made plain numbers).
_COPIED = {
    "Modality": "Modality",
    "MagneticFieldStrength": "MagneticFieldStrength",
    "ImagingFrequency": "ImagingFrequency",
    "Manufacturer": "Manufacturer",
    "ManufacturerModelName": "ManufacturersModelName",
    "SoftwareVersions": "SoftwareVersions",
    "MRAcquisitionType": "MRAcquisitionType",
    "SeriesDescription": "SeriesDescription",
    "ProtocolName": "ProtocolName",
    "ScanningSequence": "ScanningSequence",
    "SequenceVariant": "SequenceVariant",
    "ScanOptions": "ScanOptions",
    "SequenceName": "SequenceName",
    "ImageType": "ImageType",
    "SeriesNumber": "SeriesNumber",
    "AcquisitionNumber": "AcquisitionNumber",
    "SliceThickness": "SliceThickness",
    "SpacingBetweenSlices": "SpacingBetweenSlices",
    "FlipAngle": "FlipAngle",
    "PixelBandwidth": "PixelBandwidth",
}
#: DICOM keyword (milliseconds) -> sidecar key (seconds).
_MILLISECONDS = {"RepetitionTime": "RepetitionTime", "EchoTime": "EchoTime"}
#: Where an enhanced (multi-frame) image keeps what a classic one has at the top level:
#: keyword -> (functional group sequence, keyword inside it).
_IN_GROUPS = FLATTENED
#: Siemens private element holding BandwidthPerPixelPhaseEncode (Hz per pixel).
_SIEMENS_BWPPPE = (0x0019, 0x1028)
#: Siemens XA (no CSA header): PhaseEncodingDirectionPositive and
#: BandwidthPerPixelPhaseEncode, at the top level of a classic image and inside a private
#: sequence of the functional groups of an enhanced one (where dcm2niix reads them).
_XA_PHASE_POSITIVE = (0x0021, 0x111C)
_XA_BWPPPE = (0x0021, 0x1153)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a pydicom value: numbers as int/float, text as str, lists."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    text = str(value)
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        return number
    return text


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def siemens_csa_image_header(ds: Dataset) -> dict[str, Any]:
    """The tags of a Siemens CSA image header as ``{name: items}``; empty when there is none."""
    if "SIEMENS" not in str(ds.get("Manufacturer", "")).upper():
        return {}
    tags = csa_image_tags(ds)  # one pass over the SV10 format; nibabel reads the others
    if tags:
        return {name: [_plain(item) for item in items] for name, items in tags.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import csareader

        try:
            header = csareader.get_csa_header(ds, "image")
        except (csareader.CSAError, ValueError, KeyError, TypeError):
            return {}
    if not header:
        return {}
    return {name: tag.get("items", []) for name, tag in header.get("tags", {}).items()}


def _first(items: Sequence[Any] | None) -> Any:
    return items[0] if items else None


def _acquisition_time(value: Any) -> str | None:
    """DICOM ``HHMMSS.ffffff`` as ``HH:MM:SS.ffffff`` (BIDS' form)."""
    text = str(value or "").strip()
    if len(text) < 6 or not text[:6].isdigit():
        return None
    rest = text[6:]
    return f"{text[0:2]}:{text[2:4]}:{text[4:6]}{rest}"


def _value(ds: Dataset, keyword: str) -> Any:
    """A top-level value, else the one in the shared or first per-frame functional groups."""
    value = ds.get(keyword)
    if value not in (None, "") or keyword not in _IN_GROUPS:
        return value
    sequence, inner = _IN_GROUPS[keyword]
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in (ds.get(groups) or [])[:1]:
            for item in group.get(sequence) or []:
                value = item.get(inner)
                if value not in (None, ""):
                    return value
    return None


def _private_number(value: Any) -> float | None:
    """A private element's number, whether pydicom knew its VR or left the raw bytes."""
    if isinstance(value, bytes):
        if len(value) == 8:  # FD
            return float(struct.unpack("<d", value)[0])
        try:
            value = value.decode("ascii").strip(" \0")
        except UnicodeDecodeError:
            return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if value else None
    return _number(value)


def _siemens_xa_number(ds: Dataset, tag: tuple[int, int]) -> float | None:
    """A Siemens XA private number: at the top level, else in a sequence of the shared or
    first frame's functional groups."""
    element = ds.get(tag)
    if element is not None:
        return _private_number(element.value)
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in (ds.get(groups) or [])[:1]:
            for sequence in group:
                if sequence.VR != "SQ":
                    continue
                for item in sequence.value or []:
                    inner = item.get(tag)
                    if inner is not None:
                        return _private_number(inner.value)
    return None


def _in_plane_phase_direction(ds: Dataset) -> str | None:
    """InPlanePhaseEncodingDirection: ROW or COL, or None when not recorded."""
    text = str(_value(ds, "InPlanePhaseEncodingDirection") or "").strip().upper()
    text = "COL" if text == "COLUMN" else text  # enhanced objects spell it out
    return text if text in ("ROW", "COL") else None


def bids_sidecar(ds: Dataset, shape: Sequence[int] | None = None) -> dict[str, Any]:
    """The BIDS sidecar fields of a DICOM image (see the module docstring).

    ``shape`` is the shape of the converted NIfTI image (for the reconstructed matrix along
    the phase-encoding axis); without it the echo spacing fields are left out.
    """
    sidecar: dict[str, Any] = {}
    for keyword, key in _COPIED.items():
        value = _value(ds, keyword)
        if value not in (None, ""):
            sidecar[key] = _plain(value)
    for keyword, key in _MILLISECONDS.items():
        ms = _number(_value(ds, keyword))
        if ms is not None:
            sidecar[key] = ms / 1000.0
    acquired = _acquisition_time(ds.get("AcquisitionTime"))
    if acquired is not None:
        sidecar["AcquisitionTime"] = acquired

    csa = siemens_csa_image_header(ds)
    direction = _in_plane_phase_direction(ds)
    if direction is not None:
        sidecar["InPlanePhaseEncodingDirectionDICOM"] = direction
        # ROW: phase encoded along a row, our i; COL: down the rows, and our j runs up them.
        axis = "i" if direction == "ROW" else "j"
        positive = _first(csa.get("PhaseEncodingDirectionPositive"))
        siemens = "SIEMENS" in str(ds.get("Manufacturer", "")).upper()
        if positive not in (0, 1) and siemens and not csa:
            positive = _siemens_xa_number(ds, _XA_PHASE_POSITIVE)
        if positive in (0, 1):
            flipped = positive == 0 if axis == "i" else positive == 1
            sidecar["PhaseEncodingDirection"] = axis + ("-" if flipped else "")
        else:
            sidecar["PhaseEncodingAxis"] = axis
        bandwidth = _number(_first(csa.get("BandwidthPerPixelPhaseEncode")))
        if bandwidth is None:
            element = ds.get(_SIEMENS_BWPPPE)
            bandwidth = _number(element.value) if element is not None else None
        if bandwidth is None and siemens and not csa:
            bandwidth = _siemens_xa_number(ds, _XA_BWPPPE)
        if bandwidth and shape is not None and len(shape) >= 2:
            matrix = int(shape[0] if axis == "i" else shape[1])
            spacing = 1.0 / (bandwidth * matrix)
            sidecar["EffectiveEchoSpacing"] = spacing
            sidecar["TotalReadoutTime"] = spacing * (matrix - 1)

    times = csa.get("MosaicRefAcqTimes")
    if times and "MOSAIC" in str(ds.get("ImageType", "")).upper():
        # a mosaic's tiles in order; in a single slice's header the list says nothing of
        # where that slice goes (per-slice volumes time each slice by its AcquisitionTime)
        timing = [round(float(t) / 1000.0, 6) for t in times]
        if (_number(_first(csa.get("ProtocolSliceNumber"))) or 0) > 1:
            timing.reverse()  # slices numbered in reverse: the image's slice axis is turned
        sidecar["SliceTiming"] = timing
    return sidecar


def seconds_of_day(value: Any) -> float | None:
    """DICOM TM (``HHMMSS.ffffff``) or the time part of a DT, in seconds since midnight."""
    text = str(value or "").strip()
    if len(text) >= 14 and text[:8].isdigit():  # DT: YYYYMMDDHHMMSS.ffffff
        text = text[8:]
    if len(text) < 6 or not text[:6].isdigit():
        return None
    try:
        fraction = float("0" + text[6:].split("+")[0].split("-")[0]) if text[6:7] == "." else 0.0
    except ValueError:
        fraction = 0.0
    return int(text[0:2]) * 3600 + int(text[2:4]) * 60 + int(text[4:6]) + fraction


def _slice_times(times: list[float | None], positions: list[float]) -> list[float] | None:
    """Acquisition times relative to the earliest, in the order of the slice positions."""
    if len(times) < 2 or any(t is None for t in times):
        return None
    known = [float(t) for t in times if t is not None]
    start = min(known)
    order = sorted(range(len(known)), key=lambda i: positions[i])
    relative = [round(known[i] - start, 6) for i in order]
    return relative if any(relative) else None


def _position(ds: Dataset, normal: Sequence[float]) -> float:
    position = [float(v) for v in ds.ImagePositionPatient]
    return float(sum(a * b for a, b in zip(normal, position, strict=True)))


def _normal(iop: Sequence[Any]) -> list[float]:
    r = [float(v) for v in iop[:3]]
    c = [float(v) for v in iop[3:6]]
    return [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]


def _frame_slice_timing(ds: Dataset) -> list[float] | None:
    """SliceTiming of an enhanced multi-frame image, from each frame's acquisition time."""
    frames = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    times: list[float | None] = []
    positions: list[float] = []
    for frame in frames:
        content = (frame.get("FrameContentSequence") or [None])[0]
        times.append(seconds_of_day(content.get("FrameAcquisitionDateTime")) if content else None)
        plane = (frame.get("PlanePositionSequence") or [None])[0]
        orient = (frame.get("PlaneOrientationSequence") or [None])[0]
        if orient is None and shared is not None:
            orient = (shared.get("PlaneOrientationSequence") or [None])[0]
        if plane is None or orient is None:
            return None
        normal = _normal(orient.ImageOrientationPatient)
        positions.append(_position(plane, normal))
    return _slice_times(times, positions)


def volume_sidecar(
    datasets: Sequence[Dataset], shape: Sequence[int] | None = None
) -> dict[str, Any]:
    """The BIDS sidecar fields of one volume: its one object, or its slices.

    As :func:`bids_sidecar` of the first object; SliceTiming also for per-slice volumes (from
    each slice's AcquisitionTime) and multi-frame ones (from each frame's
    FrameAcquisitionDateTime), relative to the earliest slice, in the NIfTI image's slice
    order (along the slice normal).
    """
    if not datasets:
        return {}
    first = datasets[0]
    sidecar = bids_sidecar(first, shape)
    if "SliceTiming" in sidecar:
        return sidecar
    timing: list[float] | None = None
    if len(datasets) > 1:
        try:
            normal = _normal(first.ImageOrientationPatient)
            positions = [_position(ds, normal) for ds in datasets]
        except (AttributeError, TypeError, ValueError):
            positions = []
        if positions:
            times = [seconds_of_day(ds.get("AcquisitionTime")) for ds in datasets]
            add_slice_timing(sidecar, times, positions)
            return sidecar
    elif "PerFrameFunctionalGroupsSequence" in first:
        try:
            timing = _frame_slice_timing(first)
        except (AttributeError, TypeError, ValueError):
            timing = None
    if timing:
        sidecar["SliceTiming"] = timing
    return sidecar


def add_slice_timing(
    sidecar: dict[str, Any], times: Sequence[float | None], positions: Sequence[float]
) -> None:
    """Put SliceTiming (each slice's time of day relative to the earliest, in the order of
    the positions) and the volume's AcquisitionTime (its earliest slice's) into ``sidecar``."""
    timing = _slice_times(list(times), list(positions))
    if not timing:
        return
    sidecar["SliceTiming"] = timing
    start = min(t for t in times if t is not None)
    hours, rest = divmod(start, 3600)
    minutes, seconds = divmod(rest, 60)
    sidecar["AcquisitionTime"] = f"{int(hours):02d}:{int(minutes):02d}:{seconds:09.6f}"
