"""Real volumes for the preprocessing tests: the shared Siemens series as NIfTI images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import REPO

SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"


def _load_series() -> list:
    from rtcloud.imaging.dicom import read_dicom_bytes
    from rtcloud.imaging.nifti import dicom_to_nifti

    files = sorted(Path(SAMPLE_DICOMS).glob("*.dcm"))
    return [dicom_to_nifti(read_dicom_bytes(f.read_bytes())) for f in files]


@pytest.fixture(scope="session")
def real_series() -> list:
    """The 11 volumes of the real run (64x64x27, 3x3x4 mm), as nibabel images."""
    if not SAMPLE_DICOMS.is_dir():
        pytest.skip(f"the shared real series is not at {SAMPLE_DICOMS}")
    return _load_series()


@pytest.fixture(scope="session")
def real_volume(real_series) -> tuple[np.ndarray, np.ndarray]:
    """The first real volume's data (float64) and affine."""
    img = real_series[0]
    return np.asarray(img.dataobj, dtype=np.float64), np.asarray(img.affine)
