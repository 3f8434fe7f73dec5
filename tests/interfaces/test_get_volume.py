"""getVolume: a volume as a NIfTI image for every layout, locally and over the data service."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from rtcloud.errors import FileWaitTimeout
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.nifti import VolumeImage
from rtcloud.imaging.volume import volume_image
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series

SHAPE = (16, 12, 6)
PATTERN = "001_000013_{TR:06d}.dcm"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return {
        layout: generate_series(
            tmp_path_factory.mktemp(layout), num_volumes=3, shape=SHAPE, layout=layout, scan=13
        )
        for layout in ("mosaic", "enhanced", "slices")
    }


def _volume_files(paths, layout, index):
    per = SHAPE[2] if layout == "slices" else 1
    return paths[index * per : (index + 1) * per]


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices"])
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
            expected = volume_image(
                [read_dicom_file(p) for p in _volume_files(paths, layout, index)]
            )
            np.testing.assert_array_equal(np.asarray(image.dataobj), expected.dataobj)
            np.testing.assert_allclose(image.affine, expected.affine)
            assert image.sidecar == expected.sidecar and image.sidecar["RepetitionTime"] == 2.0
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
