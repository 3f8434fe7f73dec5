"""The rest of RT-Cloud's script API: MATLAB files, reorientation to a reference image,
``isRemote``, errors catchable by RT-Cloud's names and ours, and a prompt answered by a pipe."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest
import scipy.io

from helpers import REPO
from rtcloud.errors import (
    InvalidDicomError,
    RequestError,
    StateError,
    ValidationError,
)
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.structdict import StructDict
from rtCommon.imageHandling import (
    convertDicomImgToNifti,
    getAxesForTransform,
    getTransform,
    readDicomFromBuffer,
    readRetryDicomFromDataInterface,
    saveAsNiftiImage,
)
from rtCommon.structDict import MatlabStructDict
from rtCommon.utils import loadMatFile, loadMatFileFromBuffer


def test_mat_files_load_as_matlab_struct_dicts(tmp_path):
    path = tmp_path / "patterns.mat"
    scipy.io.savemat(
        path,
        {"patterns": {"TR": 2, "name": "faces", "onsets": np.array([[1.0, 5.0, 9.0]])}},
    )
    cfg = loadMatFile(path)
    assert isinstance(cfg, MatlabStructDict) and isinstance(cfg, StructDict)
    assert sorted(cfg.fields()) == ["TR", "name", "onsets"]
    assert cfg.TR == 2 and cfg.name == "faces"  # 1x1 arrays read as values
    np.testing.assert_array_equal(cfg.onsets, [[1.0, 5.0, 9.0]])
    assert cfg.missing is None
    cfg.TR = 3  # stored as MATLAB would save it
    assert cfg.TR == 3 and cfg["patterns"]["TR"].shape == (1, 1)
    assert cfg["patterns"]["TR"].dtype == np.uint8
    again = loadMatFileFromBuffer(path.read_bytes())
    assert again.name == "faces"
    scipy.io.savemat(tmp_path / "two.mat", {"a": 1, "b": np.arange(3)})
    two = loadMatFile(tmp_path / "two.mat")
    assert two.a == 1 and sorted(two.fields()) == ["a", "b"]
    with pytest.raises(FileNotFoundError):
        loadMatFile(tmp_path / "missing.mat")


def test_reorienting_to_a_reference_matches_dcm2niix(sample_dicom_dir, tmp_path):
    """The reference is dcm2niix's image of the series, reoriented to RAS by nibabel: a
    volume saved in its layout has the same voxels as dcm2niix's volume, reoriented."""
    dcm2niix = pytest.importorskip("dcm2niix")
    source = tmp_path / "dicoms"
    source.mkdir()
    files = sorted(sample_dicom_dir.glob("*.dcm"))[1:4]
    for path in files:
        shutil.copyfile(path, source / path.name)
    subprocess.run(
        [dcm2niix.bin, "-z", "n", "-b", "n", "-f", "ref", "-o", tmp_path, source],
        check=True,
        capture_output=True,
    )
    theirs = nib.load(tmp_path / "ref.nii")
    canonical = nib.as_closest_canonical(theirs)
    reference = tmp_path / "ref_RAS.nii"
    first = np.asanyarray(canonical.dataobj)[..., 0]
    nib.save(nib.Nifti1Image(first, canonical.affine), reference)
    cfg = StructDict(ref_BOLD=str(reference))
    target, dicom = getAxesForTransform(str(files[0]), cfg)
    # the scan's codes are those of the array RT-Cloud read (nibabel's mosaic_to_nii)
    ds = readDicomFromBuffer(files[1].read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom.dicomreaders import mosaic_to_nii

        nibabels = mosaic_to_nii(ds)
    assert target == ("R", "A", "S") and dicom == nib.aff2axcodes(nibabels.affine)
    assert dicom == ("P", "L", "S")
    cfg.axesTransform = getTransform(target, dicom)
    out = saveAsNiftiImage(ds, str(tmp_path / "out" / "vol.nii"), cfg, str(reference))
    saved = nib.load(out)
    np.testing.assert_array_equal(
        np.asanyarray(saved.dataobj), np.asanyarray(canonical.dataobj)[..., 1]
    )
    np.testing.assert_allclose(saved.affine, canonical.affine, atol=1e-4)


def test_a_hard_coded_rt_cloud_transform_still_reorients_right(sample_dicom_dir, tmp_path):
    """RT-Cloud projects hard-code ``cfg.axesTransform = getTransform(('L', 'A', 'S'),
    ('P', 'L', 'S'))`` for the axis order of nibabel's mosaic reader; applied to dcm2niix's
    order instead, it scrambled the saved volume without any error. The oracle is nibabel's
    own ``mosaic_to_nii``, reoriented by that transform, and dcm2niix's image of the file."""
    dcm2niix = pytest.importorskip("dcm2niix")
    path = sorted(sample_dicom_dir.glob("*.dcm"))[1]
    shutil.copyfile(path, tmp_path / "in.dcm")
    subprocess.run(
        [dcm2niix.bin, "-z", "n", "-b", "n", "-f", "ref", "-o", tmp_path, tmp_path / "in.dcm"],
        check=True,
        capture_output=True,
    )
    reference = tmp_path / "ref.nii"  # dcm2niix's image: L, A, S
    ds = readDicomFromBuffer(path.read_bytes())
    cfg = StructDict(ref_BOLD=str(reference))
    cfg.axesTransform = getTransform(("L", "A", "S"), ("P", "L", "S"))
    saved = nib.load(saveAsNiftiImage(ds, str(tmp_path / "vol.nii"), cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom.dicomreaders import mosaic_to_nii

        expected = nib.orientations.apply_orientation(
            mosaic_to_nii(ds).get_fdata(), cfg.axesTransform
        )
    np.testing.assert_array_equal(np.asanyarray(saved.dataobj), expected)
    np.testing.assert_array_equal(np.asanyarray(saved.dataobj), nib.load(reference).dataobj)


def test_is_remote_attribute():
    assert DataInterface(allowedDirs=["*"], allowedFileTypes=["*"]).isRemote is False


def test_errors_are_caught_by_rt_clouds_names_too(tmp_path, sample_dicom_dir):
    data = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm", ".txt"])
    (tmp_path / "watched").mkdir()
    (tmp_path / "other").mkdir()
    data.initWatch(str(tmp_path / "watched"), "*.dcm", 1)
    for kind in (StateError, RequestError, ValidationError):
        with pytest.raises(kind, match="not in the watched folder"):
            data.watchFile(str(tmp_path / "other" / "x.dcm"), timeout=0.1)
    stream = data.initScannerStream(str(tmp_path / "watched"), "*.dcm", 1)
    with pytest.raises(RequestError, match="timeout"):
        data.getImageData(stream, 0, timeout=0)
    with pytest.raises(RequestError, match="relative"):
        DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=["*"]).listFiles("x/*.txt")
    with pytest.raises(RequestError, match="timeout"):
        readRetryDicomFromDataInterface(data, "x.dcm", timeout=0)
    # a truncated DICOM: ours says InvalidDicomError, RT-Cloud's scripts catch StateError
    whole = sorted(sample_dicom_dir.glob("*.dcm"))[0].read_bytes()
    for exc in (StateError, InvalidDicomError, ValidationError):
        with pytest.raises(exc):
            convertDicomImgToNifti(readDicomFromBuffer(whole[: len(whole) // 2]))
    data.close()


def test_errors_keep_both_names_across_the_server(server, tmp_path):
    client = ClientInterface()
    try:
        data = client.dataInterface
        assert client.bidsInterface.isRemote is False and data.isRemote is False
        data.initWatch(str(tmp_path), "*.dcm", 1)
        with pytest.raises(StateError, match="not in the watched folder"):
            data.watchFile("/somewhere/else/x.dcm", timeout=0.1)
        with pytest.raises(RequestError):
            data.watchFile("/somewhere/else/x.dcm", timeout=0.1)
    finally:
        client.close()


def _initialize(tmp_path, answer):
    project = tmp_path / "sample"
    shutil.copytree(REPO / "projects" / "sample", project, ignore=shutil.ignore_patterns("tmp"))
    return subprocess.run(
        [sys.executable, "-u", str(project / "initialize.py")],
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_piped_answer_to_the_prompt_is_taken(tmp_path):
    out = _initialize(tmp_path, "y\n")  # echo y | python initialize.py
    assert out.returncode == 0, out.stderr
    assert "Continue with local files? (y/n)" in out.stdout
    assert "session ready" in out.stdout
    refused = _initialize(tmp_path / "n", "n\n")
    assert refused.returncode != 0 and "declined" in refused.stderr
    empty = _initialize(tmp_path / "e", "")
    assert empty.returncode != 0 and "echo y" in empty.stderr
