"""Test helpers for BIDS: the official validator, small images, incrementals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from rtcloud.bids.incremental import BidsIncremental

#: The validator's command: the bids-validator-deno wheel runs its bundled JavaScript with
#: the deno binary from the deno wheel (nothing is fetched at run time).
VALIDATOR = shutil.which("bids-validator-deno") or str(
    Path(sys.executable).parent / "bids-validator-deno"
)


def validate(root: str | os.PathLike[str]) -> tuple[list[dict], list[dict]]:
    """(errors, warnings) the official BIDS validator reports for a dataset."""
    result = subprocess.run(
        [VALIDATOR, os.fspath(root), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), f"validator printed nothing: {result.stderr}"
    report = json.loads(result.stdout)
    issues = report["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    warnings = [i for i in issues if i["severity"] == "warning"]
    return errors, warnings


def assert_valid(root: str | os.PathLike[str]) -> list[dict]:
    errors, warnings = validate(root)
    assert errors == [], json.dumps(errors, indent=1)[:4000]
    return warnings


def image(shape=(8, 9, 5), tr=2.0, dtype=np.int16, seed=0, affine=None):
    """A NIfTI image of random voxels (a 3-D or 4-D shape), RAS, 3 mm voxels."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, size=shape).astype(dtype)
    if affine is None:
        affine = np.diag([3.0, 3.0, 3.5, 1.0])
        affine[:3, 3] = [-10.0, -12.0, -8.0]
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if len(shape) == 4:
        img.header.set_zooms((3.0, 3.0, 3.5, tr))
    return img


def metadata(**extra):
    md = {
        "subject": "01",
        "task": "faces",
        "suffix": "bold",
        "datatype": "func",
        "run": 1,
        "RepetitionTime": 2.0,
        "EchoTime": 0.03,
        "ProtocolName": "func_task-faces_run-01",
        "AcquisitionTime": "12:47:56.000000",
    }
    md.update(extra)
    return md


def incremental(seed=0, shape=(8, 9, 5), **extra) -> BidsIncremental:
    return BidsIncremental(image(shape, seed=seed), metadata(**extra))
