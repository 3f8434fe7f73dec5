"""Helpers shared by the DICOM tests: walking datasets, and finding identifying values."""

from __future__ import annotations

from pydicom.multival import MultiValue
from pydicom.uid import UID

from rtcloud.imaging.dicom import ATTRIBUTES_TO_ANONYMIZE

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
SOP_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222"
REF_UID = "1.2.826.0.1.3680043.8.498.33333333333333333333"
DEEP_UID = "1.2.826.0.1.3680043.8.498.44444444444444444444"
DOOMED_UID = "1.2.826.0.1.3680043.8.498.55555555555555555555"


def walk(ds):
    yield ds
    for element in list(ds):
        if element.VR == "SQ" and element.value is not None:
            for item in element.value:
                yield from walk(item)


def string_values(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def everything_identifying(ds):
    """Every identifying value and non-registered UID of a dataset, at any depth."""
    values = set()
    meta = getattr(ds, "file_meta", None)
    for item in list(walk(ds)) + ([meta] if meta is not None else []):
        for element in item:
            if element.VR == "UI":
                uids = string_values(element.value)
                values |= {v for v in uids if len(v) > 8 and UID(v).name == v}
            elif element.keyword in ATTRIBUTES_TO_ANONYMIZE and element.VR != "SQ":
                values |= {v.strip() for v in string_values(element.value) if len(v.strip()) >= 4}
    return values


def leaked(values, data):
    found = []
    for value in values:
        for encoding in ("utf-8", "latin-1"):
            try:
                if value.encode(encoding) in data:
                    found.append(value)
            except UnicodeEncodeError:
                pass
    return found
