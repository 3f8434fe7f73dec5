"""A symbolic link in a watched folder leads nowhere outside the allowed folders: streams
and watches do not read through it (getFile already refused it), while a link that stays
inside them works as before."""

from __future__ import annotations

import os
import shutil

import pydicom
import pytest

from rtcloud.errors import FileWaitTimeout, ValidationError
from rtcloud.interfaces.data import DataInterface

PATTERN = "001_000013_{TR:06d}.dcm"


@pytest.fixture
def folders(sample_dicom_dir, tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    scanner = allowed / "scanner"
    scanner.mkdir(parents=True)
    outside.mkdir()
    shutil.copyfile(sample_dicom_dir / PATTERN.format(TR=1), outside / "private.dcm")
    shutil.copyfile(sample_dicom_dir / PATTERN.format(TR=2), allowed / "kept.dcm")
    os.symlink(outside / "private.dcm", scanner / PATTERN.format(TR=0))
    os.symlink(allowed / "kept.dcm", scanner / PATTERN.format(TR=1))
    di = DataInterface(allowedDirs=[str(allowed)], allowedFileTypes=[".dcm"])
    yield di, scanner
    di.close()


def test_a_stream_does_not_read_through_a_link_that_leaves_the_allowed_folders(folders):
    di, scanner = folders
    named = di.initScannerStream(str(scanner), PATTERN, 0)
    with pytest.raises(FileWaitTimeout, match="outside the allowed folders"):
        di.getImageData(named, 0, timeout=0.5)
    assert di.getImageData(named, 1, timeout=5).InstanceNumber  # a link inside: as before
    globbed = di.initScannerStream(str(scanner), "*.dcm", 0)
    first = di.getImageData(globbed, 0, timeout=5)  # the glob's only file it may read
    kept = pydicom.dcmread(scanner.parent / "kept.dcm")
    assert first.InstanceNumber == kept.InstanceNumber and first.PixelData == kept.PixelData
    with pytest.raises(FileWaitTimeout):
        di.getImageData(globbed, 1, timeout=0.5)


def test_a_watch_refuses_it_by_its_real_path(folders):
    """(watchFile checked the real path before this change; kept here beside the streams)"""
    di, scanner = folders
    di.initWatch(str(scanner), "*.dcm", 0)
    with pytest.raises(ValidationError, match="private.dcm.*not within the allowed"):
        di.watchFile(PATTERN.format(TR=0), timeout=0.5)
