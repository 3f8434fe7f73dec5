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

import warnings
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["bids_sidecar", "siemens_csa_image_header"]

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
_IN_GROUPS = {
    "RepetitionTime": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "FlipAngle": ("MRTimingAndRelatedParametersSequence", "FlipAngle"),
    "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
    "PixelBandwidth": ("MRImagingModifierSequence", "PixelBandwidth"),
    "SliceThickness": ("PixelMeasuresSequence", "SliceThickness"),
    "InPlanePhaseEncodingDirection": ("MRFOVGeometrySequence", "InPlanePhaseEncodingDirection"),
}
#: Siemens private element holding BandwidthPerPixelPhaseEncode (Hz per pixel).
_SIEMENS_BWPPPE = (0x0019, 0x1028)


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


def _in_plane_phase_direction(ds: Dataset) -> str | None:
    """InPlanePhaseEncodingDirection: ROW or COL, or None when not recorded."""
    text = str(_value(ds, "InPlanePhaseEncodingDirection") or "").strip().upper()
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
        if positive in (0, 1):
            flipped = positive == 0 if axis == "i" else positive == 1
            sidecar["PhaseEncodingDirection"] = axis + ("-" if flipped else "")
        else:
            sidecar["PhaseEncodingAxis"] = axis
        bandwidth = _number(_first(csa.get("BandwidthPerPixelPhaseEncode")))
        if bandwidth is None:
            element = ds.get(_SIEMENS_BWPPPE)
            bandwidth = _number(element.value) if element is not None else None
        if bandwidth and shape is not None and len(shape) >= 2:
            matrix = int(shape[0] if axis == "i" else shape[1])
            spacing = 1.0 / (bandwidth * matrix)
            sidecar["EffectiveEchoSpacing"] = spacing
            sidecar["TotalReadoutTime"] = spacing * (matrix - 1)

    times = csa.get("MosaicRefAcqTimes")
    if times:
        sidecar["SliceTiming"] = [round(float(t) / 1000.0, 6) for t in times]
    return sidecar
