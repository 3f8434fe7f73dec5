"""DICOM bytes and files: reading, knowing when a file is complete, anonymizing.

A scanner writes a volume's file over some milliseconds. pydicom happily parses a file cut
short before its pixel data (it just has no ``PixelData``) or inside it (shorter
``PixelData``), so completeness is decided here: the pixel data must be present and as long
as ``Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames`` (for compressed
transfer syntaxes: the encapsulated sequence must be closed). No pixel decoding is needed.

Anonymization removes what identifies a person (names, IDs, birth date, age, sex, size,
weight, addresses, phone numbers, institution, physicians and operators, study dates,
free-text comments, device serial numbers), in nested sequences too, and keeps what analysis
needs: geometry, timing (``AcquisitionTime`` is kept for TR timing), pixel data and the
Siemens CSA headers.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.uid import UID

from rtcloud.errors import InvalidDicomError

__all__ = [
    "ATTRIBUTES_TO_ANONYMIZE",
    "anonymize_dicom",
    "dicom_is_complete",
    "file_is_complete_dicom",
    "looks_like_dicom",
    "read_dicom_bytes",
    "read_dicom_file",
    "write_dicom_bytes",
    "write_dicom_file",
]

#: Identifying attributes (DICOM keywords) that anonymization empties or removes.
ATTRIBUTES_TO_ANONYMIZE: tuple[str, ...] = (
    # the person
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "MilitaryRank",
    "BranchOfService",
    "EthnicGroup",
    "Occupation",
    "PatientReligiousPreference",
    "MedicalRecordLocator",
    "PatientInsurancePlanCodeSequence",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientComments",
    "AdditionalPatientHistory",
    "PregnancyStatus",
    "SmokingStatus",
    "MedicalAlerts",
    "Allergies",
    "PatientState",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientSpeciesDescription",
    # people and places around the study
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
    "OperatorsName",
    "OperatorIdentificationSequence",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    "AccessionNumber",
    "StudyID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "AdmissionID",
    "IssuerOfAdmissionID",
    # dates (acquisition *time* is kept for TR timing)
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepEndDate",
    "AcquisitionDateTime",
    "StudyTime",
    "SeriesTime",
    "ContentTime",
    "InstanceCreationTime",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepEndTime",
    # free text
    "StudyDescription",
    "ImageComments",
    "StudyComments",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "RequestAttributesSequence",
    "TextComments",
    "FrameComments",
    "InterpretationText",
    "ReasonForStudy",
    "RequestedProcedureComments",
)

_ANON_SET = frozenset(ATTRIBUTES_TO_ANONYMIZE)
_DATE = re.compile(r"(19|20)\d{6}")
_ENCAPSULATED_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def looks_like_dicom(data: bytes) -> bool:
    """True when the bytes start like a DICOM Part 10 file (``DICM`` at offset 128)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def _parse(data: bytes) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (PydicomInvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidDicomError(
            f"not a readable DICOM file ({len(data)} bytes): {exc}; if a scanner is still "
            "writing it, wait until it is complete"
        ) from exc


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def _incomplete_reason(ds: Dataset, data: bytes) -> str | None:
    """Why a parsed dataset is not a complete image, or None when it is."""
    if "PixelData" not in ds:
        return "its pixel data is missing (file cut short?)"
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if transfer is not None and transfer.is_compressed:
        if not data.rstrip(b"\0").endswith(_ENCAPSULATED_END.rstrip(b"\0")):
            return "its compressed pixel data is not closed (file cut short?)"
        return None
    expected = _expected_pixel_bytes(ds)
    if expected is None:
        return "it lacks Rows, Columns or BitsAllocated"
    got = len(ds.PixelData)
    if got < expected:
        return f"its pixel data has {got} of {expected} bytes (file cut short?)"
    return None


def read_dicom_bytes(data: bytes) -> Dataset:
    """Parse a complete DICOM image from bytes; InvalidDicomError if not DICOM or incomplete."""
    ds = _parse(bytes(data))
    reason = _incomplete_reason(ds, data)
    if reason is not None:
        raise InvalidDicomError(
            f"DICOM data of {len(data)} bytes is incomplete: {reason}; if a scanner is still "
            "writing it, wait until it is complete"
        )
    return ds


def dicom_is_complete(data: bytes) -> bool:
    """True when ``data`` is a complete DICOM image (never raises)."""
    try:
        read_dicom_bytes(data)
    except InvalidDicomError:
        return False
    except Exception:  # any parser surprise on a half-written file means: not yet
        return False
    return True


def file_is_complete_dicom(path: str | os.PathLike[str]) -> bool:
    """True when the file at ``path`` holds a complete DICOM image (never raises)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return dicom_is_complete(data)


def read_dicom_file(path: str | os.PathLike[str]) -> Dataset:
    """Read a complete DICOM image from a file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"DICOM file {os.fspath(path)!r} does not exist") from None
    return read_dicom_bytes(data)


def write_dicom_bytes(ds: Dataset) -> bytes:
    """Serialize a dataset (with its file meta) to DICOM Part 10 bytes."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=bool(getattr(ds, "file_meta", None)))
    return buffer.getvalue()


def write_dicom_file(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write a dataset to a DICOM file."""
    Path(path).write_bytes(write_dicom_bytes(ds))


def _walk(ds: Dataset) -> Iterable[Dataset]:
    yield ds
    for element in list(ds):
        if element.VR == "SQ" and element.value is not None:
            for item in element.value:
                yield from _walk(item)


def _same_length_uid(uid: str) -> str:
    """A deterministic stand-in for ``uid`` with the same length (so binary headers keep shape)."""
    digits = str(int.from_bytes(hashlib.sha256(uid.encode("ascii", "replace")).digest(), "big"))
    digits = digits.lstrip("0") * 2
    return ("2.25." + digits)[: len(uid)]


def _is_registered_uid(value: str) -> bool:
    return UID(value).name != value


def _string_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def anonymize_dicom(ds: Dataset) -> Dataset:
    """Remove identifying attributes (also inside sequences) in place; return the dataset.

    Identifying attributes are emptied (sequences removed); instance UIDs, which embed
    scanner serial numbers and dates, are replaced by same-length stand-ins that stay
    consistent across the volumes of a series; copies of those values inside private
    headers (the Siemens CSA headers keep their structure) are overwritten too.
    """
    secrets_found: set[str] = set()
    uid_map: dict[str, str] = {}
    meta = getattr(ds, "file_meta", None)
    datasets = list(_walk(ds)) + ([meta] if meta is not None else [])
    for item in datasets:
        for element in item:
            if element.VR == "UI" and element.value:
                for value in _string_values(element.value):
                    if len(value) > 8 and not _is_registered_uid(value):
                        uid_map.setdefault(value, _same_length_uid(value))
            elif element.keyword in _ANON_SET and element.VR != "SQ":
                secrets_found.update(
                    v.strip() for v in _string_values(element.value) if len(v.strip()) >= 4
                )
    for item in datasets:
        for element in list(item):
            if element.keyword in _ANON_SET:
                if element.VR == "SQ":
                    del item[element.tag]
                else:
                    element.value = _empty(element.VR)
            elif element.VR == "UI" and element.value:
                mapped = [uid_map.get(v, v) for v in _string_values(element.value)]
                element.value = mapped if len(mapped) > 1 else mapped[0]
            elif element.tag.is_private and element.tag.element >= 0x1000:
                _scrub_private(element, uid_map, secrets_found)
    return ds


def _scrub_private(element: Any, uid_map: dict[str, str], secrets: set[str]) -> None:
    """Overwrite copies of UIDs and identifying values inside a private element, in place."""
    value = element.value
    if isinstance(value, bytes):
        data = value
        for old, new in uid_map.items():
            data = data.replace(old.encode("ascii", "replace"), new.encode("ascii"))
        for secret in secrets:
            raw = secret.encode("latin-1", "replace")
            data = data.replace(raw, b"X" * len(raw))
        # CSA version fields of Siemens hold the acquisition date: blank dates there too
        if data != value:
            element.value = data
    elif isinstance(value, str):
        text = value
        for old, new in uid_map.items():
            text = text.replace(old, new)
        for secret in secrets:
            text = text.replace(secret, "X" * len(secret))
        if _DATE.fullmatch(text.strip()):
            text = ""
        if text != value:
            element.value = text


def _empty(vr: str) -> Any:
    return None if vr in ("US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW") else ""
