"""BIDS constants and helpers shared by the incremental, run and archive models.

What lives here: the BIDS entities (full names, short keys, order in a file name), building
BIDS file names and folders from entities, the defaults of a new dataset (description,
README, events columns), unit fixes of sidecar times, parsing entities out of a DICOM
ProtocolName, and the checks that say whether two volumes can sit in one run (each returns
``(ok, message)``, the message naming the field that differs). RT-Cloud's names are kept
(``BIDS_VERSION``, ``getNiftiData``, ``metadataAppendCompatible`` ...).

File names follow the BIDS specification's entity order (the same as pybids' default path
patterns; ``tests/bids`` checks them against pybids and the official validator).

Pure module: no threads, sockets, clocks or event loops; pandas is imported only by the
functions that handle events tables.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import nibabel as nib
import numpy as np

from rtcloud.errors import ValidationError

__all__ = [
    "BIDS_DIR_PATH_PATTERN",
    "BIDS_FILE_PATH_PATTERN",
    "BIDS_FILE_PATTERN",
    "BIDS_VERSION",
    "DATASET_DESC_REQ_FIELDS",
    "DEFAULT_DATASET_DESC",
    "DEFAULT_EVENTS_HEADERS",
    "DEFAULT_README",
    "ENTITIES",
    "ENTITY_KEYS",
    "PYBIDS_PSEUDO_ENTITIES",
    "ACQUISITION_METADATA",
    "VOLUME_METADATA",
    "BidsEntityKeys",
    "BidsFileExtension",
    "adjustTimeUnits",
    "bids_data_dir",
    "bids_file_name",
    "correct3DHeaderTo4D",
    "correctEventsFileDatatypes",
    "events_from_tsv",
    "events_to_tsv",
    "filterEntities",
    "getDicomMetadata",
    "getNiftiData",
    "isEntity",
    "loadBidsEntities",
    "makeDicomFieldBidsCompatible",
    "metadataAppendCompatible",
    "metadataFromProtocolName",
    "niftiHeadersAppendCompatible",
    "niftiImagesAppendCompatible",
    "symmetricDictDifference",
    "writeDataFrameToEvents",
]

#: The BIDS version the datasets we write declare.
BIDS_VERSION = "1.9.0"

DATASET_DESC_REQ_FIELDS = ["Name", "BIDSVersion"]
DEFAULT_DATASET_DESC: dict[str, Any] = {
    "Name": "rtcloud_dataset",
    "BIDSVersion": BIDS_VERSION,
    "DatasetType": "raw",
    "Authors": ["rtcloud user", "rtcloud user 2"],
    "GeneratedBy": [{"Name": "rtcloud"}],
}
DEFAULT_README = (
    "This dataset was written by rtcloud from volumes streamed during a real-time fMRI "
    "session. Describe the study here: participants, task, acquisition and contact.\n"
)
DEFAULT_EVENTS_HEADERS = ["onset", "duration"]
#: Entities pybids reports that are not part of a file's BIDS name proper.
PYBIDS_PSEUDO_ENTITIES = ["extension"]

#: Entity full name -> key in a file name, in the order BIDS puts them in a name.
ENTITIES: dict[str, str] = {
    "subject": "sub",
    "session": "ses",
    "sample": "sample",
    "task": "task",
    "tracksys": "tracksys",
    "acquisition": "acq",
    "nucleus": "nuc",
    "volume": "voi",
    "ceagent": "ce",
    "staining": "stain",
    "tracer": "trc",
    "reconstruction": "rec",
    "direction": "dir",
    "run": "run",
    "proc": "proc",
    "modality": "mod",
    "echo": "echo",
    "flip": "flip",
    "inv": "inv",
    "mt": "mt",
    "part": "part",
    "recording": "recording",
    "space": "space",
    "chunk": "chunk",
}
#: Short key -> full name.
ENTITY_KEYS = {short: name for name, short in ENTITIES.items()}
#: Names that are not entities of a file name but describe where it goes.
_FILE_FIELDS = ("suffix", "datatype", "extension")
_LABEL = re.compile(r"[a-zA-Z0-9+]+")

#: Sidecar fields that differ from volume to volume of one run (and so are not compared
#: when volumes are appended to a run, and not written to a run's sidecar).
VOLUME_METADATA = frozenset(
    {
        "AcquisitionTime",
        "AcquisitionNumber",
        "AcquisitionDateTime",
        "ContentTime",
        "InstanceNumber",
        "TriggerTime",
        "FrameReferenceTime",
        "ImageComments",
    }
)

#: Sidecar fields that say how a run was acquired: volumes appended to one run must agree on
#: each of them that both have. Any other field (a DICOM header's per-image values such as
#: WindowCenter or SOPInstanceUID, a field only some volumes carry) may differ from volume to
#: volume; a run keeps such values per volume.
ACQUISITION_METADATA = frozenset(
    {
        "RepetitionTime",
        "EchoTime",
        "EchoNumber",
        "FlipAngle",
        "InversionTime",
        "SliceTiming",
        "SliceThickness",
        "SpacingBetweenSlices",
        "PhaseEncodingDirection",
        "SliceEncodingDirection",
        "EffectiveEchoSpacing",
        "TotalReadoutTime",
        "MultibandAccelerationFactor",
        "ParallelReductionFactorInPlane",
        "MagneticFieldStrength",
        "Manufacturer",
        "ManufacturersModelName",
        "ManufacturerModelName",
        "PulseSequenceType",
        "ScanningSequence",
        "SequenceVariant",
        "ScanOptions",
        "SequenceName",
        "MRAcquisitionType",
        "PixelBandwidth",
        "TaskName",
    }
)

#: NIfTI time unit codes (xyzt_units bits 3-5) and back.
UNIT_TO_CODE = {"unknown": 0, "meter": 1, "mm": 2, "micron": 3, "sec": 8, "msec": 16, "usec": 24}
CODE_TO_UNIT = {code: unit for unit, code in UNIT_TO_CODE.items()}

BIDS_FILE_PATTERN = (
    "sub-{subject}[_ses-{session}]_task-{task}[_acq-{acquisition}][_ce-{ceagent}]"
    "[_rec-{reconstruction}][_dir-{direction}][_run-{run}][_echo-{echo}][_part-{part}]"
    "_{suffix<bold|cbv|sbref|events>}{extension<.nii|.nii.gz|.json|.tsv>}"
)
BIDS_DIR_PATH_PATTERN = "sub-{subject}[/ses-{session}]/{datatype<func>|func}"
BIDS_FILE_PATH_PATTERN = BIDS_DIR_PATH_PATTERN + "/" + BIDS_FILE_PATTERN


class BidsFileExtension(str, enum.Enum):
    """Extensions of the files of one BIDS image."""

    IMAGE = ".nii"
    IMAGE_COMPRESSED = ".nii.gz"
    METADATA = ".json"
    EVENTS = ".tsv"


BidsEntityKeys = enum.Enum(  # type: ignore[misc]
    "BidsEntityKeys", {name.upper(): name for name in ENTITIES} | {"SUFFIX": "suffix"}
)
BidsEntityKeys.__doc__ = "The BIDS entity names (RT-Cloud's enum)."


def loadBidsEntities() -> dict[str, dict[str, str]]:
    """Every BIDS entity: ``{name: {"name": name, "key": short key}}`` (RT-Cloud's shape)."""
    return {name: {"name": name, "key": short} for name, short in ENTITIES.items()}


def isEntity(name: str) -> bool:
    """True for a BIDS entity or a file field (suffix, datatype)."""
    return name in ENTITIES or name in _FILE_FIELDS


def filterEntities(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metadata`` that are BIDS entities (and suffix, datatype)."""
    return {k: v for k, v in metadata.items() if isEntity(k)}


#: Entities whose values are indices (BIDS: non-negative integers), not labels.
_INDEX_ENTITIES = frozenset({"run", "echo", "flip", "inv", "chunk"})


def _label(name: str, value: Any) -> str:
    text = str(value)
    if name in _INDEX_ENTITIES and not text.isdigit():
        raise ValidationError(
            f"BIDS entity {name}={value!r} must be a whole number (its index, e.g. {name}=1)"
        )
    if not _LABEL.fullmatch(text):
        raise ValidationError(
            f"BIDS entity {name}={value!r} may hold only letters, digits and '+' "
            "(no '_', '-', '/' or spaces)"
        )
    return text


def bids_file_name(entities: Mapping[str, Any], extension: str) -> str:
    """``sub-01_task-rest_run-1_bold.nii`` from entities (with ``suffix``) and an extension."""
    parts = []
    for name, short in ENTITIES.items():
        value = entities.get(name)
        if value is None or value == "":
            continue
        parts.append(f"{short}-{_label(name, value)}")
    suffix = entities.get("suffix")
    if not suffix:
        raise ValidationError("a BIDS file name needs a suffix (e.g. suffix='bold')")
    return "_".join([*parts, _label("suffix", suffix)]) + extension


def bids_data_dir(entities: Mapping[str, Any]) -> str:
    """``sub-01[/ses-1]/func``: the folder of a file, relative to the dataset root."""
    subject = entities.get("subject")
    if not subject:
        raise ValidationError("a BIDS path needs the subject entity")
    parts = [f"sub-{_label('subject', subject)}"]
    if entities.get("session"):
        parts.append(f"ses-{_label('session', entities['session'])}")
    parts.append(str(entities.get("datatype") or "func"))
    return "/".join(parts)


def getNiftiData(image: Any) -> np.ndarray:
    """The voxel array of a NIfTI image in its on-disk dtype (not nibabel's float64)."""
    return np.asanyarray(image.dataobj)


def makeDicomFieldBidsCompatible(name: str) -> str:
    """A DICOM element name as a BIDS key: letters only (``"Repetition Time"`` ->
    ``"RepetitionTime"``)."""
    return re.sub(r"[^a-zA-Z]", "", name)


def adjustTimeUnits(metadata: dict[str, Any]) -> None:
    """Turn RepetitionTime and EchoTime given in milliseconds into seconds, in place.

    A RepetitionTime above 100 or an EchoTime above 1 is taken to be in milliseconds (BIDS
    wants seconds); a value still that large after dividing by 1000 raises ValueError.
    """
    for key, limit in (("RepetitionTime", 100.0), ("EchoTime", 1.0)):
        value = metadata.get(key)
        if value is None:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{key} must be a number, got {value!r}") from None
        if seconds > limit:
            seconds /= 1000.0
            if seconds > limit:
                raise ValidationError(
                    f"{key} {value!r} is too large both as seconds and as milliseconds "
                    f"(at most {limit:g} s)"
                )
        metadata[key] = seconds


def metadataFromProtocolName(protocolName: str | None) -> dict[str, str]:
    """Entities written into a DICOM ProtocolName, e.g. ``func_task-story_run-01``.

    Returns ``{"datatype": "func", "task": "story", "run": "01"}``; unknown pieces are
    ignored, and an empty dict comes back for None or a name without entities.
    """
    if not protocolName:
        return {}
    found: dict[str, str] = {}
    for piece in re.split(r"[_\s]+", str(protocolName)):
        if piece in ("func", "anat", "fmap", "dwi", "perf"):
            found.setdefault("datatype", piece)
            continue
        key, sep, value = piece.partition("-")
        if sep and value and key in ENTITY_KEYS and _LABEL.fullmatch(value):
            found[ENTITY_KEYS[key]] = value
    return found


def getDicomMetadata(dicomImg: Any, kind: str = "all") -> dict[str, str]:
    """Every element of a DICOM dataset except the pixel data: ``{BidsName: str(value)}``.

    ``kind`` is ``'all'``, ``'public'`` or ``'private'`` (private tags only). RT-Cloud's
    helper; the BIDS incrementals we make use :func:`rtcloud.imaging.sidecar.bids_sidecar`
    (acquisition fields in BIDS units, nothing that names the participant) instead.
    """
    from pydicom.dataset import Dataset

    if not isinstance(dicomImg, Dataset):
        raise TypeError(f"expected a pydicom Dataset, got {type(dicomImg).__name__}")
    if kind not in ("all", "public", "private"):
        raise ValidationError(f"kind must be 'all', 'public' or 'private', got {kind!r}")
    out: dict[str, str] = {}
    for element in dicomImg:
        if element.keyword == "PixelData":
            continue
        if kind == "public" and element.tag.is_private:
            continue
        if kind == "private" and not element.tag.is_private:
            continue
        name = makeDicomFieldBidsCompatible(element.name)
        if name:
            out[name] = str(element.value)
    return out


def symmetricDictDifference(
    d1: Mapping[str, Any],
    d2: Mapping[str, Any],
    equal: Callable[[Any, Any], bool] = lambda a, b: bool(a == b),
) -> dict[str, list[Any]]:
    """Keys whose values differ (or that only one dict has): ``{key: [v1, v2]}``."""
    out: dict[str, list[Any]] = {}
    for key in set(d1) | set(d2):
        if key not in d1 or key not in d2:
            out[key] = [d1.get(key), d2.get(key)]
        elif not equal(d1[key], d2[key]):
            out[key] = [d1[key], d2[key]]
    return out


def _values_equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def correct3DHeaderTo4D(image: Any, repetitionTime: float, timeUnitCode: int = 8) -> None:
    """Make a 3-D image's header describe 4-D data: TR as the 4th zoom, time unit seconds."""
    header = image.header
    zooms = list(header.get_zooms())
    while len(zooms) < 4:
        zooms.append(1.0)
    zooms[3] = float(repetitionTime)
    header.set_zooms(zooms[: len(image.shape)] if len(image.shape) >= 4 else zooms[:3])
    space = CODE_TO_UNIT.get(int(header["xyzt_units"]) & 0x07, "unknown")
    header.set_xyzt_units("mm" if space == "unknown" else space, CODE_TO_UNIT[timeUnitCode])


#: Header fields compared when volumes are appended to one run, and what they mean. (The
#: qform and sform codes are not: a run written to disk says "scanner" where an image made
#: in memory said nothing, and the affines themselves are compared.)
_HEADER_CHECKS: tuple[tuple[str, str], ...] = (
    ("datatype", "voxel data type"),
    ("bitpix", "bits per voxel"),
    ("xyzt_units", "space and time units"),
    ("slice_code", "slice order code"),
    ("dim_info", "frequency/phase/slice axes"),
)


#: Raw NIfTI header fields that must be equal for two volumes of one run (fast path).
_SAME_FIELDS = (
    "datatype", "bitpix", "xyzt_units", "qform_code", "sform_code", "slice_code", "dim_info",
    "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z",
    "srow_x", "srow_y", "srow_z",
)  # fmt: skip


def _header_key(header: Any) -> tuple[Any, ...] | None:
    """The fields of a NIfTI header that decide whether volumes fit one run, as bytes."""
    raw = getattr(header, "structarr", None)
    if raw is None:
        return None
    dim, pixdim = raw["dim"], raw["pixdim"]
    return (dim[1:4].tobytes(), pixdim[1:5].tobytes(), *(raw[f].tobytes() for f in _SAME_FIELDS))


def niftiHeadersAppendCompatible(h1: Any, h2: Any) -> tuple[bool, str]:
    """Whether images with these headers can be volumes of one run, and if not, why."""
    key1 = _header_key(h1)
    if key1 is not None and key1 == _header_key(h2):
        return True, ""  # the same raw fields: no need for the tolerant comparison below
    shape1, shape2 = tuple(h1.get_data_shape()[:3]), tuple(h2.get_data_shape()[:3])
    if shape1 != shape2:
        return False, f"image shape differs: {shape1} vs {shape2}"
    zooms1, zooms2 = h1.get_zooms(), h2.get_zooms()
    if not np.allclose(zooms1[:3], zooms2[:3], rtol=0, atol=1e-5):
        return False, f"voxel size differs: {tuple(zooms1[:3])} vs {tuple(zooms2[:3])} mm"
    tr1 = zooms1[3] if len(zooms1) > 3 else None
    tr2 = zooms2[3] if len(zooms2) > 3 else None
    if tr1 is not None and tr2 is not None and not np.isclose(tr1, tr2, rtol=0, atol=1e-6):
        return False, f"RepetitionTime (NIfTI pixdim[4]) differs: {tr1} vs {tr2} s"
    for field, meaning in _HEADER_CHECKS:
        v1, v2 = h1[field], h2[field]
        if not np.array_equal(v1, v2):
            return False, f"{meaning} ({field}) differs: {v1} vs {v2}"
    for which in ("sform", "qform"):
        a1, a2 = getattr(h1, f"get_{which}")(), getattr(h2, f"get_{which}")()
        if not np.allclose(a1, a2, rtol=0, atol=1e-4):
            return False, f"affine ({which}) differs:\n{a1}\nvs\n{a2}"
    return True, ""


def niftiImagesAppendCompatible(img1: Any, img2: Any) -> tuple[bool, str]:
    """Whether two NIfTI images can be volumes of one run, and if not, why."""
    for image in (img1, img2):
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            return False, f"not a NIfTI image: {type(image).__name__}"
    return niftiHeadersAppendCompatible(img1.header, img2.header)


def metadataAppendCompatible(m1: Mapping[str, Any], m2: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether volumes with these metadata can be in one run, and if not, which fields differ.

    Compared: the entities and the acquisition fields (:data:`ACQUISITION_METADATA`) that
    both have. Other fields, such as a DICOM header's per-image values, may differ, and a
    field only one of them has is no difference.
    """
    keys = {k for k in m1.keys() & m2.keys() if k in ACQUISITION_METADATA or isEntity(k)}
    a = {k: m1[k] for k in keys}
    b = {k: m2[k] for k in keys}
    diff = symmetricDictDifference(a, b, _values_equal)
    if not diff:
        return True, ""
    shown = "; ".join(f"{k}: {v[0]!r} vs {v[1]!r}" for k, v in sorted(diff.items())[:5])
    more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
    return False, f"metadata differs: {shown}{more}"


# ------------------------------------------------------------------------- events tables

#: Column -> dtype for the columns of an events table that BIDS defines.
BIDS_EVENT_COL_TO_DTYPE = {
    "onset": "float64",
    "duration": "float64",
    "trial_type": "str",
    "response_time": "float64",
    "sample": "float64",
    "value": "str",
    "HED": "str",
}


def correctEventsFileDatatypes(df: Any) -> Any:
    """The table with BIDS' columns in BIDS' types (onset and duration as floats)."""
    import pandas as pd

    df = df.copy()
    for column, dtype in BIDS_EVENT_COL_TO_DTYPE.items():
        if column not in df.columns:
            continue
        if dtype == "float64":
            df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
        else:
            df[column] = df[column].astype(object).where(df[column].notna(), None)
            df[column] = df[column].map(lambda v: v if v is None else str(v)).astype(object)
    return df


def empty_events() -> Any:
    """An events table with only BIDS' required columns and no rows."""
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype="float64") for c in DEFAULT_EVENTS_HEADERS})


def events_to_tsv(df: Any) -> str:
    """An events table as BIDS TSV text (tabs, ``n/a`` for missing values, no index); None
    stands for the empty table (written without loading pandas)."""
    if df is None:
        return "\t".join(DEFAULT_EVENTS_HEADERS) + "\n"
    return str(df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n"))


def events_from_tsv(text: str) -> Any:
    """An events table from BIDS TSV text."""
    import io

    import pandas as pd

    if not text.strip():
        return empty_events()
    df = pd.read_csv(io.StringIO(text), sep="\t", na_values=["n/a"], keep_default_na=False)
    return correctEventsFileDatatypes(df)


def writeDataFrameToEvents(df: Any, path: str) -> None:
    """Write an events table to ``path`` as BIDS TSV."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(events_to_tsv(df))


def events_equal(a: Any, b: Any) -> bool:
    """Whether two events tables hold the same rows (after BIDS' type corrections)."""
    if a is None or b is None:
        return a is b
    a, b = correctEventsFileDatatypes(a), correctEventsFileDatatypes(b)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    return events_to_tsv(a) == events_to_tsv(b)


def json_ready(value: Any) -> Any:
    """A copy of a metadata value that ``json.dumps`` accepts (numpy values made plain)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


#: BIDS sidecar fields whose value is a number: a DICOM header's text (RT-Cloud's
#: getDicomMetadata gives every value as text, "90" for a flip angle) is written as one.
_BIDS_NUMBERS = frozenset(
    {
        "EchoTime",
        "EchoTrainLength",
        "FlipAngle",
        "ImagingFrequency",
        "InversionTime",
        "MagneticFieldStrength",
        "PercentPhaseFOV",
        "PercentSampling",
        "RepetitionTime",
        "SAR",
        "SliceThickness",
    }
)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def dumps_sidecar(metadata: Mapping[str, Any]) -> str:
    """A sidecar's JSON text: sorted keys, four-space indents, as RT-Cloud wrote it; the
    fields BIDS defines as numbers written as numbers when they came as text."""
    fields = {
        k: float(v)
        if k in _BIDS_NUMBERS and isinstance(v, str) and _NUMBER.fullmatch(v.strip())
        else v
        for k, v in metadata.items()
    }
    return json.dumps(json_ready(fields), indent=4, sort_keys=True) + "\n"


def non_entities(metadata: Mapping[str, Any], drop: Iterable[str] = ()) -> dict[str, Any]:
    """The sidecar part of an image's metadata: everything but entities and ``drop``."""
    dropped = set(drop)
    return {k: v for k, v in metadata.items() if not isEntity(k) and k not in dropped}
