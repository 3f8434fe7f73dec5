"""Compressed transfer syntaxes: JPEG lossless, JPEG-LS, JPEG 2000 and RLE.

Compressed variants of a real series (the shared Siemens mosaics; the simulator's series
when they are absent) are made by encoders we did not write: pydicom's (RLE, and JPEG 2000
through pylibjpeg-openjpeg) and dcmtk's ``dcmcjpeg``, ``dcmcjpls`` and ``dcmcrle`` (skipped
with a message where dcmtk is not installed). For each variant: the files are complete and
no cut of them is; they decode (pydicom's pixel handlers with the pylibjpeg plugins) to the
uncompressed volumes' voxels; their NIfTI images equal the uncompressed ones' and the image
dcm2niix makes of the compressed file; and a stream delivers them, written in pieces and
anonymized, as it delivers uncompressed files.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from dcm2niix_oracle import assert_same_image, run_dcm2niix
from rtcloud.imaging.completeness import dicom_is_complete
from rtcloud.imaging.dicom import read_dicom_bytes, read_dicom_file
from rtcloud.imaging.nifti import dicom_to_nifti
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sample-dicoms"
#: How each variant is made: pydicom's encoders, or a dcmtk program and its options.
VARIANTS = {
    "rle": ("pydicom", RLELossless),
    "jpeg2000-lossless": ("pydicom", JPEG2000Lossless),
    "jpeg-lossless-sv1": ("dcmcjpeg", "--encode-lossless-sv1"),
    "jpeg-ls-lossless": ("dcmcjpls", "--encode-lossless"),
    "rle-dcmtk": ("dcmcrle", None),
}
EXPECTED_SYNTAX = {
    "rle": "1.2.840.10008.1.2.5",
    "jpeg2000-lossless": "1.2.840.10008.1.2.4.90",
    "jpeg-lossless-sv1": "1.2.840.10008.1.2.4.70",
    "jpeg-ls-lossless": "1.2.840.10008.1.2.4.80",
    "rle-dcmtk": "1.2.840.10008.1.2.5",
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[Path]:
    """Three volumes of the real series (instances 1-3), else of the simulator's."""
    if SAMPLE.is_dir():
        return [SAMPLE / f"001_000013_{i:06d}.dcm" for i in (1, 2, 3)]
    folder = tmp_path_factory.mktemp("synthetic")
    return generate_series(folder, num_volumes=3, shape=(64, 64, 16), scan=13)


def make_variant(variant: str, originals: list[Path], folder: Path) -> list[Path]:
    tool, option = VARIANTS[variant]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in originals:
        target = folder / path.name
        if tool == "pydicom":
            ds = pydicom.dcmread(path)
            ds.compress(option)
            ds.save_as(target, enforce_file_format=True)
        else:
            if shutil.which(tool) is None:
                pytest.skip(f"dcmtk's {tool} is not installed (Debian: apt-get install dcmtk)")
            args = [tool, *([option] if option else []), str(path), str(target)]
            done = subprocess.run(args, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        out.append(target)
    return out


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, originals, tmp_path_factory) -> tuple[str, list[Path]]:
    folder = tmp_path_factory.mktemp(request.param)
    return request.param, make_variant(request.param, originals, folder)


def test_each_variant_is_compressed_as_asked(variant):
    name, files = variant
    for path in files:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        assert meta.TransferSyntaxUID == EXPECTED_SYNTAX[name]


def test_decoded_volumes_and_their_nifti_equal_the_uncompressed_ones(variant, originals):
    _, files = variant
    for path, original_path in zip(files, originals, strict=True):
        ds = read_dicom_bytes(path.read_bytes())  # complete, parsed by our reader
        original = read_dicom_file(original_path)
        np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)
        ours, theirs = dicom_to_nifti(ds), dicom_to_nifti(original)
        np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
        np.testing.assert_array_equal(ours.affine, theirs.affine)


def test_nifti_equals_what_dcm2niix_makes_of_the_compressed_file(variant, tmp_path):
    _, files = variant
    theirs, _ = run_dcm2niix(files[:1], tmp_path)
    assert_same_image(dicom_to_nifti(read_dicom_file(files[0])), theirs, exact=True)


def test_no_cut_of_a_compressed_file_is_complete(variant):
    _, files = variant
    data = files[0].read_bytes()
    assert dicom_is_complete(data)
    pixel_tag = data.rindex(b"\xe0\x7f\x10\x00")
    cuts = set(range(pixel_tag, len(data), max(1, (len(data) - pixel_tag) // 40)))
    cuts |= set(range(len(data) - 12, len(data)))  # the last fragment's end, the delimiter
    at = data.find(b"\xfe\xff\x00\xe0", pixel_tag)
    while at != -1:  # around every item header
        cuts |= set(range(at - 1, at + 9))
        at = data.find(b"\xfe\xff\x00\xe0", at + 1)
    early = [cut for cut in sorted(cuts) if cut < len(data) and dicom_is_complete(data[:cut])]
    assert early == []


def test_a_stream_delivers_compressed_volumes_written_in_pieces(variant, originals, tmp_path):
    _, files = variant
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    data = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    replay = threading.Thread(
        target=replay_series,
        args=(files, scanner),
        kwargs={"tr": 0.05, "mode": "pieces", "chunk_size": 16384, "piece_pause": 0.002},
    )
    try:
        replay.start()
        stream = data.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 0)
        for original_path in originals:
            original = read_dicom_file(original_path)
            ds = data.getImageData(stream, int(original.InstanceNumber), timeout=30)
            assert str(ds.PatientName) == "" and ds.SOPInstanceUID != original.SOPInstanceUID
            np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)
        replay.join()
    finally:
        data.close()
