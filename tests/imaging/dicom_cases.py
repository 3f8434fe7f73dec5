"""Helpers shared by the DICOM tests: walking datasets, and finding identifying values."""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage

from rtcloud.imaging.anonymize import ATTRIBUTES_TO_ANONYMIZE

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
SOP_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222"
REF_UID = "1.2.826.0.1.3680043.8.498.33333333333333333333"
DEEP_UID = "1.2.826.0.1.3680043.8.498.44444444444444444444"
DOOMED_UID = "1.2.826.0.1.3680043.8.498.55555555555555555555"
PRIVATE_UID = "1.2.826.0.1.3680043.8.498.66666666666666666666"


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


#: Identifying values that :func:`identifying_dataset` hides (its name aside).
SECRETS = [
    "SUBJ-0042",
    "19750102",
    "20240305",
    "Clinic of Testing",
    "ALT-1001",
    "ALT-1002",
    "Smith^Operator",
    "OTHER-777",
    "Hospital Registry",
    "RP-31337",
    STUDY_UID,
    SOP_UID,
    REF_UID,
    DEEP_UID,
    DOOMED_UID,
    PRIVATE_UID,
    "20090304",
    "20240306",
]


def identifying_dataset(name="Doe^Jane", charset="ISO_IR 100", implicit=False):
    """A small image whose identifying values hide everywhere anonymization must look: in
    sequences two deep (with an empty item), in a sequence anonymization deletes (whose UID
    must still go elsewhere), in private elements of many VRs, and in the file meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.ImplementationVersionName = "BUILT_1"
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.PatientName = name
    ds.PatientID = "SUBJ-0042"
    ds.PatientBirthDate = "19750102"
    ds.PatientWeight = "71.5"
    ds.StudyDate = "20240305"
    ds.DateOfLastCalibration = ["20090304", "20090304"]  # a date outside the list
    ds.FrameReferenceDateTime = "20240306000001.5+0100"  # the next day: 1900-01-02
    ds.AcquisitionTime = "101500.250000"
    ds.InstitutionName = "Clinic of Testing"
    ds.OtherPatientIDs = ["ALT-1001", "ALT-1002"]
    deep = Dataset()
    deep.ReferencedSOPClassUID = MRImageStorage
    deep.ReferencedSOPInstanceUID = DEEP_UID
    deep.OperatorsName = "Smith^Operator"
    deep.FrameAcquisitionDateTime = "20240305101500.25"
    other = Dataset()
    other.PatientID = "OTHER-777"
    other.IssuerOfPatientID = "Hospital Registry"
    deep.OtherPatientIDsSequence = [other]
    middle = Dataset()
    middle.ReferencedSOPInstanceUID = REF_UID
    middle.ReferencedSeriesSequence = [deep, Dataset()]
    ds.ReferencedStudySequence = [middle]
    request = Dataset()
    request.RequestedProcedureID = "RP-31337"
    request.ReferencedSOPInstanceUID = DOOMED_UID
    ds.RequestAttributesSequence = [request]
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    copies = [name, "SUBJ-0042", SOP_UID, REF_UID, DEEP_UID, DOOMED_UID, "RP-31337", "19750102"]
    blob = (
        b"SV10\0"
        + b"\0".join(c.encode("utf-8") for c in copies)
        + b"\0"
        + name.encode("latin-1", "replace")
    )
    blob += b"\0" * (len(blob) % 2)
    block.add_new(0x08, "CS", "IMAGE NUM 4")
    block.add_new(0x09, "LO", "20230101")  # a date, but none of the identifying values
    block.add_new(0x10, "OB", blob)
    other_block = ds.private_block(0x0041, "RTCLOUD TEST", create=True)
    other_block.add_new(0x01, "LO", f"scan of {name} at Clinic of Testing")
    other_block.add_new(0x02, "UT", f"ref {REF_UID} deep {DEEP_UID}")
    other_block.add_new(0x03, "UN", b"raw " + SOP_UID.encode() + b" ")
    other_block.add_new(0x04, "US", None)  # empty: parsed back as a raw element without value
    other_block.add_new(0x05, "LO", ["first", "SUBJ-0042", "Smith^Operator"])
    other_block.add_new(0x06, "PN", name)
    other_block.add_new(0x07, "DS", "71.5")
    other_block.add_new(0x08, "UI", PRIVATE_UID)  # seen nowhere else
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 4, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(32))
    return ds


def patch_dcmwrite_to_fail(monkeypatch):
    """Make pydicom's dcmwrite fail, to show that the fast writer, not dcmwrite, wrote."""

    def refuse(*args, **kwargs):
        raise AssertionError("dcmwrite was called")

    monkeypatch.setattr(pydicom, "dcmwrite", refuse)
