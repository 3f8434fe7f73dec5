"""getVolume: a volume as a NIfTI image for every layout, while its files arrive.

Each volume is compared with the image dcm2niix makes of the same file(s).
"""

from __future__ import annotations

import shutil
import threading

import pydicom
import pytest

from dcm2niix_oracle import SERIES_START, assert_volume_matches_dcm2niix
from rtcloud.errors import FileWaitTimeout, InvalidDicomError
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.nifti import VolumeImage
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series

SHAPE = (16, 12, 6)
PATTERN = "001_000013_{TR:06d}.dcm"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return {
        layout: generate_series(
            tmp_path_factory.mktemp(layout),
            num_volumes=3,
            shape=SHAPE,
            layout=layout,
            scan=13,
            start=SERIES_START,
        )
        for layout in ("mosaic", "enhanced", "slices", "enhanced-slices")
    }


def _volume_files(paths, layout, index):
    per = SHAPE[2] if layout.endswith("slices") else 1
    return paths[index * per : (index + 1) * per]


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices", "enhanced-slices"])
def test_get_volume_of_every_layout_while_files_arrive(layouts, layout, tmp_path):
    paths = layouts[layout]
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(scanner), PATTERN, 0)
        replay = threading.Thread(
            target=replay_series, args=(paths, scanner), kwargs={"tr": 0.01, "mode": "pieces"}
        )
        replay.start()
        for index in range(3):
            image = di.getVolume(stream, timeout=10)  # the next volume
            assert isinstance(image, VolumeImage) and image.shape == SHAPE
            files = _volume_files(paths, layout, index)
            assert_volume_matches_dcm2niix(image, files, tmp_path / f"dcm2niix-{index}")
            assert image.sidecar["RepetitionTime"] == 2.0
        replay.join()
        # getImageData keeps RT-Cloud's one dataset per file, anonymized
        ds = di.getImageData(stream, 1, timeout=1)
        assert ds.InstanceNumber == read_dicom_file(paths[1]).InstanceNumber
        assert str(ds.PatientName) == ""
    finally:
        di.close()


def test_a_missing_slice_is_a_clear_error_naming_the_volume_and_what_arrived(layouts, tmp_path):
    paths = layouts["slices"]
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    volume = _volume_files(paths, "slices", 1)
    for path in _volume_files(paths, "slices", 0) + volume[:2] + volume[3:]:
        shutil.copyfile(path, scanner / path.name)
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(scanner), PATTERN, 0)
        assert di.getVolume(stream, 0, timeout=5).shape == SHAPE
        with pytest.raises(FileWaitTimeout) as caught:
            di.getVolume(stream, 1, timeout=0.5)
        message = str(caught.value)
        assert "volume 1 of stream" in message and "5 of 6 slices arrived" in message
        assert volume[0].name in message and volume[2].name not in message
        # the slice arrives late: the volume is complete
        shutil.copyfile(volume[2], scanner / volume[2].name)
        assert di.getVolume(stream, 1, timeout=5).shape == SHAPE
    finally:
        di.close()


def test_a_named_stream_may_start_at_any_number(sample_dicom_dir, tmp_path):
    """Siemens numbers a run's files from 1: getVolume(stream, 2) must not wait for file 0."""
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    for number in (1, 2):
        name = PATTERN.format(TR=number)
        shutil.copyfile(sample_dicom_dir / name, scanner / name)
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(scanner), PATTERN, 0)
        image = di.getVolume(stream, 2, timeout=5)
        assert_volume_matches_dcm2niix(image, [scanner / PATTERN.format(TR=2)], tmp_path / "o")
        with pytest.raises(FileWaitTimeout, match="volume 0 of stream"):
            di.getVolume(stream, 0, timeout=0.3)
    finally:
        di.close()


def test_the_first_volume_of_an_empty_stream_times_out_naming_it(tmp_path):
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(tmp_path), PATTERN, 0)
        with pytest.raises(FileWaitTimeout, match="getVolume: volume 3 of stream") as caught:
            di.getVolume(stream, 3, timeout=0.3)
        assert "matching '001_000013_{TR:06d}.dcm'" in str(caught.value)
    finally:
        di.close()


@pytest.mark.parametrize(
    "layout,missing",
    [("mosaic", "ImageOrientationPatient"), ("slices", "PixelSpacing")],
)
def test_an_image_without_its_place_in_the_scanner_is_a_clear_error(
    layouts, sample_dicom_dir, layout, missing, tmp_path
):
    """A secondary-capture or QA export (a Siemens XA mosaic) has no geometry: getVolume says
    what is missing and what to do, at once, instead of an affine made up or nibabel's words."""
    scanner = tmp_path / "scanner"
    scanner.mkdir()
    if layout == "mosaic":
        sources = [sample_dicom_dir / PATTERN.format(TR=1)]
    else:
        sources = _volume_files(layouts["slices"], "slices", 0)
    for source in sources:
        ds = pydicom.dcmread(source)
        del ds[missing]
        name = PATTERN.format(TR=0) if layout == "mosaic" else source.name
        ds.save_as(scanner / name)
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        stream = di.initScannerStream(str(scanner), PATTERN, 0)
        with pytest.raises(InvalidDicomError) as caught:
            di.getVolume(stream, 0, timeout=5)
        message = str(caught.value)
        assert f"has no {missing}," in message and "export the series" in message
    finally:
        di.close()
