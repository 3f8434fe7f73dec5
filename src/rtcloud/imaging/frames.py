"""Enhanced (multi-frame) DICOM objects: where a frame keeps what a classic image has at its
top level, and a one-frame object seen as the classic slice it is.

An enhanced object describes each frame in functional groups: a frame's own
(``PerFrameFunctionalGroupsSequence``), else those all frames share
(``SharedFunctionalGroupsSequence``). Siemens XA can export a per-slice series as enhanced
objects of one frame each; :func:`classic_view` gives such an object the top-level
attributes of a classic slice (position, orientation, spacing, scaling, timing), so that it
is grouped into volumes, stacked and described like any per-slice series.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import copy
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["classic_view", "group_value", "is_single_frame_enhanced"]

#: Top-level keyword of a classic image -> (functional group sequence, keyword inside it).
FLATTENED = {
    "ImagePositionPatient": ("PlanePositionSequence", "ImagePositionPatient"),
    "ImageOrientationPatient": ("PlaneOrientationSequence", "ImageOrientationPatient"),
    "PixelSpacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "SliceThickness": ("PixelMeasuresSequence", "SliceThickness"),
    "SpacingBetweenSlices": ("PixelMeasuresSequence", "SpacingBetweenSlices"),
    "RescaleSlope": ("PixelValueTransformationSequence", "RescaleSlope"),
    "RescaleIntercept": ("PixelValueTransformationSequence", "RescaleIntercept"),
    "RepetitionTime": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "FlipAngle": ("MRTimingAndRelatedParametersSequence", "FlipAngle"),
    "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
    "PixelBandwidth": ("MRImagingModifierSequence", "PixelBandwidth"),
    "InPlanePhaseEncodingDirection": ("MRFOVGeometrySequence", "InPlanePhaseEncodingDirection"),
    "TemporalPositionIdentifier": ("FrameContentSequence", "TemporalPositionIndex"),
}


def group_value(ds: Dataset, frame: Dataset | None, sequence: str, keyword: str) -> Any:
    """A functional group value of one frame (an item of the per-frame groups): its own,
    else the shared one; None when neither has it."""
    for groups in (frame, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if groups is None:
            continue
        for item in groups.get(sequence) or []:
            value = item.get(keyword)
            if value is not None:
                return value
    return None


def is_single_frame_enhanced(ds: Dataset) -> bool:
    """Whether ``ds`` is an enhanced object holding one frame (a slice, not a volume)."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return False
    try:
        return int(ds.get("NumberOfFrames") or 1) == 1
    except (TypeError, ValueError):
        return False


def classic_view(ds: Dataset) -> Dataset:
    """A one-frame enhanced object as a classic slice: a shallow copy whose top level has
    the frame's functional group values (and its acquisition time as AcquisitionTime), the
    groups themselves left out. ``ds`` itself is not changed; any other dataset is returned
    as it is."""
    if not is_single_frame_enhanced(ds):
        return ds
    view = copy.copy(ds)
    view._dict = dict(ds._dict)  # copy.copy shares the element dict: changes must not
    frame = (ds.get("PerFrameFunctionalGroupsSequence") or [None])[0]
    for keyword, (sequence, inner) in FLATTENED.items():
        value = group_value(ds, frame, sequence, inner)
        if value not in (None, ""):
            setattr(view, keyword, value)
    if str(view.get("InPlanePhaseEncodingDirection", "")).upper() == "COLUMN":
        view.InPlanePhaseEncodingDirection = "COL"  # a classic image's spelling
    acquired = group_value(ds, frame, "FrameContentSequence", "FrameAcquisitionDateTime")
    acquired = str(acquired or "")
    if len(acquired) >= 14 and acquired[:8].isdigit():  # DT: YYYYMMDDHHMMSS.ffffff
        view.AcquisitionTime = acquired[8:].split("+")[0].split("-")[0]
    del view.PerFrameFunctionalGroupsSequence
    if "SharedFunctionalGroupsSequence" in view:
        del view.SharedFunctionalGroupsSequence
    return view
