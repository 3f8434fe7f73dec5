"""dcm2niix as the oracle for tests: run it on files, compare an image and a sidecar with its.

dcm2niix (the wheel is a test dependency) is the converter the field uses and the one RT-Cloud
calls. A test module that imports this module is skipped where the wheel is missing.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

dcm2niix = pytest.importorskip("dcm2niix", reason="the dcm2niix wheel is a test dependency")
NIBABEL_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"

#: Sidecar fields compared with dcm2niix's, with the tolerance for numbers.
SIDECAR_FIELDS = {
    "RepetitionTime": 1e-6,
    "EchoTime": 1e-6,
    "FlipAngle": 1e-6,
    "SliceTiming": 1e-4,
    "PhaseEncodingDirection": None,
    "EffectiveEchoSpacing": 1e-8,
    "TotalReadoutTime": 1e-6,
}


def run_dcm2niix(files: list[Path], out: Path) -> tuple[nib.Nifti1Image, dict[str, Any]]:
    """dcm2niix's image and sidecar of ``files`` (one series)."""
    source = out / "dicoms"
    source.mkdir(parents=True)
    for index, path in enumerate(files):
        target = source / f"{index:05d}.dcm"
        if path.suffix == ".gz":
            target.write_bytes(gzip.decompress(path.read_bytes()))
        else:
            shutil.copyfile(path, target)
    result = subprocess.run(
        [dcm2niix.bin, "-z", "n", "-b", "y", "-ba", "y", "-f", "oracle", "-o", out, source],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (image_path,) = sorted(out.glob("oracle*.nii"))
    sidecar = json.loads(image_path.with_suffix(".json").read_text())
    image = nib.load(image_path)
    loaded = nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)
    if image.dataobj.slope != 1 or image.dataobj.inter != 0:
        # integers with a scale factor stand for floating-point values (Philips)
        loaded.set_data_dtype(np.float32)
    return loaded, sidecar


def assert_same_image(ours: nib.Nifti1Image, theirs: nib.Nifti1Image, *, exact: bool) -> None:
    """Same voxels and affine (0.01 mm) after canonical reorientation; as-is when ``exact``."""
    pairs = [(nib.as_closest_canonical(ours), nib.as_closest_canonical(theirs))]
    if exact:
        pairs.append((ours, theirs))
    for a, b in pairs:
        assert a.shape == b.shape
        np.testing.assert_allclose(a.affine, b.affine, atol=0.01)
        if a.get_data_dtype().kind in "iu" and b.get_data_dtype().kind in "iu":
            np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())
        else:  # floating-point values (Philips): as equal as float32 allows
            np.testing.assert_allclose(a.get_fdata(), b.get_fdata(), rtol=1e-6, atol=0)
    # the header as dcm2niix labels it: scanner frame, and a type in which the values are
    # what a script computes with (unsigned 12-bit data as int16: differences go negative)
    for code in ("qform_code", "sform_code"):
        assert int(ours.header[code]) == int(theirs.header[code]), code
    if exact or ours.get_data_dtype().kind in "iu":
        assert ours.get_data_dtype() == theirs.get_data_dtype()


def assert_same_sidecar(ours: dict[str, Any], theirs: dict[str, Any], required: set[str]) -> None:
    assert required <= set(ours), f"missing in ours: {required - set(ours)}"
    assert required <= set(theirs), f"missing in dcm2niix's: {required - set(theirs)}"
    compared = 0
    for key, tolerance in SIDECAR_FIELDS.items():
        if key not in theirs:
            continue
        assert key in ours, f"dcm2niix gives {key}, we do not"
        if tolerance is None:
            assert ours[key] == theirs[key], key
        else:
            np.testing.assert_allclose(ours[key], theirs[key], atol=tolerance, err_msg=key)
        compared += 1
    assert compared >= len(required)


def gunzipped(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / path.name.removesuffix(".gz")
    target.write_bytes(gzip.decompress(path.read_bytes()))
    return target


FMRI_FIELDS = {"RepetitionTime", "EchoTime", "FlipAngle", "SliceTiming", "PhaseEncodingDirection"}

#: When synthetic series compared with dcm2niix's slice times start. dcm2niix keeps a slice's
#: time of day as the number hhmmss.ffffff in single precision, so the slice times it makes
#: of a series written one file per slice are as coarse as that number's steps: 2**-7 s from
#: 09:06 to 13:06 (65536 <= hhmmss < 131072), 2**-6 s after. A series started at 10:00 is
#: within 2**-8 s of the exact times whatever the hour the test runs.
SERIES_START = dt.datetime(2026, 1, 2, 10, 0, 0)


def assert_volume_matches_dcm2niix(image: Any, files: list[Path], out: Path) -> None:
    """A volume with a sidecar (``VolumeImage``) is dcm2niix's image of ``files``.

    Voxels in the same order and the affine (0.01 mm); repetition and echo time, and slice
    times where dcm2niix gives them (within 2**-8 s: make per-slice series start at
    :data:`SERIES_START`).
    """
    theirs, their_sidecar = run_dcm2niix(files, out)
    assert_same_image(image, theirs, exact=True)
    # the header fields dcm2niix fills from the acquisition: TR, frequency/phase/slice axes
    np.testing.assert_allclose(image.header["pixdim"][4], theirs.header["pixdim"][4], atol=1e-6)
    assert int(image.header["dim_info"]) == int(theirs.header["dim_info"])
    if "SliceTiming" in their_sidecar:
        np.testing.assert_allclose(
            image.sidecar["SliceTiming"], their_sidecar.pop("SliceTiming"), atol=2**-8
        )
    assert_same_sidecar(image.sidecar, their_sidecar, {"RepetitionTime", "EchoTime"})
