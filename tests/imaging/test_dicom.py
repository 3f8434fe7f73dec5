"""DICOM reading, completeness and anonymization on the real Siemens series and synthetic data."""

from __future__ import annotations

import pytest

from rtcloud.errors import InvalidDicomError
from rtcloud.imaging.dicom import (
    ATTRIBUTES_TO_ANONYMIZE,
    anonymize_dicom,
    dicom_is_complete,
    file_is_complete_dicom,
    read_dicom_bytes,
    read_dicom_file,
    write_dicom_bytes,
)
from rtcloud.imaging.nifti import dicom_to_nifti
from rtcloud.simulate.synthetic import generate_series


def identifying_values(ds):
    values = set()
    for item in [ds, *[i for e in ds if e.VR == "SQ" for i in e.value]]:
        for keyword in ATTRIBUTES_TO_ANONYMIZE:
            if keyword in item and item[keyword].VR != "SQ":
                text = str(item[keyword].value or "").strip()
                if len(text) >= 4:
                    values.add(text)
    return values


def test_truncated_real_file_is_never_complete(sample_dicom_dir):
    data = (sample_dicom_dir / "001_000013_000005.dcm").read_bytes()
    assert dicom_is_complete(data)
    cuts = list(range(0, len(data), 1531)) + [len(data) - 1, len(data) - 2, 307200]
    early = [cut for cut in cuts if dicom_is_complete(data[:cut])]
    assert early == []
    with pytest.raises(InvalidDicomError, match="incomplete|not a readable"):
        read_dicom_bytes(data[:307200])


def test_not_dicom_at_all(tmp_path):
    with pytest.raises(InvalidDicomError):
        read_dicom_bytes(b"hello world" * 100)
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\0" * 500)
    assert not file_is_complete_dicom(path)
    assert not file_is_complete_dicom(tmp_path / "missing.dcm")


def test_anonymization_leaves_no_identifying_value_of_the_real_series(sample_dicom_dir):
    files = sorted(sample_dicom_dir.glob("*.dcm"))
    assert len(files) >= 2
    series_uids = set()
    for path in files:
        original = read_dicom_file(path)
        secrets = identifying_values(original)
        secrets |= {str(original.PatientName), str(original.PatientID), original.PatientBirthDate}
        secrets |= {original.InstitutionName, original.StudyDate, original.DeviceSerialNumber}
        anonymized = anonymize_dicom(read_dicom_file(path))
        out = write_dicom_bytes(anonymized)
        leaked = [s for s in secrets if s and s.encode("latin-1", "replace") in out]
        assert leaked == [], f"{path.name} still holds {leaked}"
        # what analysis needs is still there
        assert anonymized.AcquisitionTime == original.AcquisitionTime
        assert anonymized.ImagePositionPatient == original.ImagePositionPatient
        assert anonymized.ImageOrientationPatient == original.ImageOrientationPatient
        assert anonymized.PixelSpacing == original.PixelSpacing
        assert anonymized.RepetitionTime == original.RepetitionTime
        assert anonymized.PixelData == original.PixelData
        assert (0x0029, 0x1010) in anonymized  # Siemens CSA image header
        series_uids.add(anonymized.SeriesInstanceUID)
        before, after = dicom_to_nifti(original), dicom_to_nifti(read_dicom_bytes(out))
        assert after.shape == before.shape
        assert (after.affine == before.affine).all()
        assert (after.get_fdata() == before.get_fdata()).all()
    assert len(series_uids) == 1  # stand-in UIDs stay consistent across a series


def test_anonymizing_synthetic_data(tmp_path):
    (path,) = generate_series(tmp_path, num_volumes=1)
    ds = read_dicom_file(path)
    assert str(ds.PatientName) == "Doe^Jane"
    out = write_dicom_bytes(anonymize_dicom(ds))
    for secret in (b"Doe^Jane", b"RTC-000123", b"19800101", b"Example Imaging", b"House^Gregory"):
        assert secret not in out
    assert read_dicom_bytes(out).AcquisitionTime
