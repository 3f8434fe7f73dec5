"""The DICOM completeness check: never early, never holding back a complete file, one full
parse per file however often it is checked while being written, and the parse handed on."""

from __future__ import annotations

import os
import threading

import pydicom
import pytest

import rtcloud.imaging.volume as volume_module
import rtcloud.watcher.filters as filters
from rtcloud.imaging.completeness import may_hold_pixel_data, probe_dicom_bytes
from rtcloud.imaging.dicom import read_dicom_bytes
from rtcloud.imaging.volume import VolumeReader
from rtcloud.simulate.synthetic import generate_series
from rtcloud.watcher.filters import file_key, make_completeness_check
from rtcloud.watcher.watcher import FileWatcher


@pytest.fixture(scope="module")
def small_volume(tmp_path_factory):
    (path,) = generate_series(tmp_path_factory.mktemp("small"), num_volumes=1, shape=(16, 16, 4))
    return path.read_bytes()


@pytest.fixture(scope="module")
def mid_volume(tmp_path_factory):
    (path,) = generate_series(tmp_path_factory.mktemp("mid"), num_volumes=1, shape=(64, 64, 30))
    return path.read_bytes()


@pytest.fixture
def parses(monkeypatch):
    """The sizes of the byte strings the completeness checks parse."""
    sizes = []
    real, real_parts = filters.probe_dicom_bytes, filters.probe_dicom_parts

    def counting(data):
        sizes.append(len(data))
        return real(data)

    def counting_parts(head, pixels):
        sizes.append(len(head) + len(pixels))
        return real_parts(head, pixels)

    monkeypatch.setattr(filters, "probe_dicom_bytes", counting)
    monkeypatch.setattr(filters, "probe_dicom_parts", counting_parts)
    return sizes


def rewrite(path, data):
    """Replace the content of ``path`` in place (same inode), as a writer restarting does."""
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(0)
        fh.write(data)


def test_a_file_growing_piece_by_piece_is_parsed_once_in_full(sample_dicom_dir, tmp_path, parses):
    data = (sample_dicom_dir / "001_000013_000004.dcm").read_bytes()
    handed = []
    check = make_completeness_check(1000, on_complete=handed.append)
    path = tmp_path / "vol.dcm"
    with open(path, "wb") as fh:
        for offset in range(0, len(data), 8192):
            fh.write(data[offset : offset + 8192])
            fh.flush()
            if fh.tell() < len(data):
                for _ in range(3):  # several events for one write
                    assert not check(path)
    assert check(path)
    full = [size for size in parses if size == len(data)]
    assert len(full) == 1
    assert len(parses) - len(full) <= 1  # at most one parse of a partial file
    assert check(path)  # checked again: parsed again (a waiter stops at the first True)
    assert len(handed) == 2 and handed[0].data == data and handed[1].data == data
    assert handed[0].dataset is not handed[1].dataset
    assert handed[0].dataset.PixelData == read_dicom_bytes(data).PixelData
    assert handed[0].key == filters.file_key(os.stat(path))
    # grown to the size its header asked for: the rest was read as the pixel data itself
    assert handed[0].pixels is handed[0].dataset.PixelData and handed[1].pixels is None
    assert handed[0].size == len(data)


def test_a_file_completed_in_place_parses_as_dcmread_reads_it(sample_dicom_dir, tmp_path):
    """The two-part read (beginning, then the pixel data on its own) gives dcmread's dataset;
    a file that grows past its pixel data, or whose beginning changed, is read whole."""
    data = (sample_dicom_dir / "001_000013_000003.dcm").read_bytes()
    at = data.index(b"\xe0\x7f\x10\x00OW") + 12
    padding = b"\xfc\xff\xfc\xffOB\0\0" + (4).to_bytes(4, "little") + b"\0" * 4
    handed = []
    check = make_completeness_check(10, on_complete=handed.append)
    path = tmp_path / "vol.dcm"
    for whole, split in ((data, True), (data + padding, False)):
        rewrite(path, whole[:300000])
        assert not check(path)
        with open(path, "ab") as fh:
            fh.write(whole[300000:])
        assert check(path)
        obj = handed.pop()
        assert (obj.pixels is not None) is split
        assert obj.data == whole and obj.dataset == pydicom.dcmread(path)
        if split:
            assert obj.head == data[:at] and obj.dataset.PixelData is obj.pixels
    # another image of the same size written over it: its beginning differs
    other = (sample_dicom_dir / "001_000013_000004.dcm").read_bytes()
    assert len(other) == len(data) and other[:at] != data[:at]
    rewrite(path, data[:300000])
    assert not check(path)
    rewrite(path, other)
    assert check(path)
    obj = handed.pop()
    assert obj.pixels is None and obj.data == other and obj.dataset == pydicom.dcmread(path)


def test_never_early_for_any_cut_of_a_real_file(sample_dicom_dir, tmp_path):
    data = (sample_dicom_dir / "001_000013_000007.dcm").read_bytes()
    check = make_completeness_check(10)
    path = tmp_path / "vol.dcm"
    cuts = [*range(0, len(data), 4099), 162122, 162134, len(data) - 2, len(data) - 1]
    for cut in sorted(cuts):  # grows, each time rewritten in place
        rewrite(path, data[:cut])
        assert not check(path), cut
    rewrite(path, data)
    assert check(path)
    for cut in (len(data) - 1, 300000, 100):  # shrinks again
        rewrite(path, data[:cut])
        assert not check(path), cut


def test_a_rewritten_file_is_not_held_back(sample_dicom_dir, tmp_path, small_volume, mid_volume):
    data = (sample_dicom_dir / "001_000013_000001.dcm").read_bytes()
    header = data.index(b"\xe0\x7f\x10\x00OW") + 12
    assert len(small_volume) < header < len(mid_volume) < len(data)
    check = make_completeness_check(10)
    path = tmp_path / "vol.dcm"
    for replacement in (small_volume, mid_volume):
        # cut short inside its pixel data: it asks for 457 KB ...
        rewrite(path, data[:300000])
        assert not check(path)
        # ... but is rewritten (same inode) with a smaller, complete image
        rewrite(path, replacement)
        assert check(path)
    # header only (no pixel data yet), then a complete image of the very same size
    rewrite(path, data[:50000])
    assert not check(path)
    rewrite(path, b"\0" * len(small_volume))
    assert not check(path)
    rewrite(path, small_volume)
    assert check(path)
    # a new file under the same name (another inode)
    rewrite(path, data[:300000])
    assert not check(path)
    other = tmp_path / "other.dcm"
    other.write_bytes(data)
    os.replace(other, path)
    assert check(path)


def test_may_hold_pixel_data(sample_dicom_dir):
    data = (sample_dicom_dir / "001_000013_000002.dcm").read_bytes()
    at = data.index(b"\xe0\x7f\x10\x00OW")  # the pixel data element
    assert may_hold_pixel_data(data) and may_hold_pixel_data(data[: at + 4])
    assert not may_hold_pixel_data(data[: at + 3])
    assert may_hold_pixel_data(data[: at + 4], start=at + 1)  # a tag across the boundary
    assert not may_hold_pixel_data(b"\0" * 1000 + b"1.2.840.10008.1.2.1")
    assert may_hold_pixel_data(b"\0" * 1000 + b"1.2.840.10008.1.2.1.99")  # deflated: unknown
    probe = probe_dicom_bytes(data[:300000])
    assert probe.dataset is None and probe.needed_size == len(data)
    assert probe.prefix_size == at + 12


def test_the_watcher_hands_each_complete_parse_to_its_hook(sample_dicom_dir, tmp_path):
    data = (sample_dicom_dir / "001_000013_000000.dcm").read_bytes()
    path = tmp_path / "vol.dcm"
    path.write_bytes(data)
    reader = VolumeReader()
    with FileWatcher(tmp_path, "*.dcm", on_complete=reader.add) as watcher:
        assert reader.take(str(path), file_key(os.stat(path))) is None
        assert watcher.wait_for_file(path.name, timeout=1) == path
        parsed = reader.take(str(path), file_key(os.stat(path)))
        assert parsed is not None and parsed.data == data
        assert reader.take(str(path), file_key(os.stat(path))) is None  # handed out once
        # parsed, then changed: not handed out
        assert watcher.completeness(path)
        with open(path, "ab") as fh:
            fh.write(b"\0\0")
        assert reader.take(str(path), file_key(os.stat(path))) is None
        # the image-stream check hands its parse on too, even for names that are not .dcm
        odd = tmp_path / "vol.img"
        odd.write_bytes(data)
        assert watcher.dicom_completeness(odd)
        kept = reader.take(str(odd), file_key(os.stat(odd)))
        assert kept.dataset.SOPInstanceUID == parsed.dataset.SOPInstanceUID
    handed = []
    with FileWatcher(tmp_path, "*.dcm") as plain:  # no hook: nothing handed on
        assert plain.completeness(path)
        assert handed == []


def test_kept_parses_are_bounded(sample_dicom_dir, tmp_path, monkeypatch):
    data = (sample_dicom_dir / "001_000013_000000.dcm").read_bytes()
    monkeypatch.setattr(volume_module, "KEPT_MAX_BYTES", 3 * len(data))
    monkeypatch.setattr(volume_module, "KEPT_MAX_OBJECTS", 8)
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"v{i}.dcm")
        paths[-1].write_bytes(data)
    reader = VolumeReader()
    with FileWatcher(tmp_path, "*.dcm", on_complete=reader.add) as watcher:

        def kept():
            return [p for p in paths if reader.take(str(p), file_key(os.stat(p))) is not None]

        for path in paths:
            assert watcher.completeness(path)
        assert kept() == paths[-3:]  # the newest, within the byte bound
        monkeypatch.setattr(volume_module, "KEPT_MAX_BYTES", 100 * len(data))
        for path in paths:
            assert watcher.completeness(path)
        assert kept() == paths[-8:]


def test_many_threads_checking_one_file(sample_dicom_dir, tmp_path):
    data = (sample_dicom_dir / "001_000013_000003.dcm").read_bytes()
    path = tmp_path / "vol.dcm"
    handed = []
    with FileWatcher(tmp_path, "*.dcm", on_complete=handed.append, polling=True) as watcher:
        found, errors = [], []

        def wait():
            try:
                found.append(watcher.wait_for_file(path.name, timeout=10))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=wait) for _ in range(8)]
        for thread in threads:
            thread.start()
        with open(path, "wb") as fh:
            for offset in range(0, len(data), 16384):
                fh.write(data[offset : offset + 16384])
                fh.flush()
        for thread in threads:
            thread.join(10)
    assert errors == [] and found == [path] * 8
    assert handed, "nobody handed the parse on"
    assert len({id(obj.dataset) for obj in handed}) == len(handed)  # a fresh parse each
    assert all(obj.data == data for obj in handed)
