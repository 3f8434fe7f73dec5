"""Streams and watches of DataInterface with a replayed scanner: the seed's own examples."""

from __future__ import annotations

import threading
import time

import pytest

from rtcloud.errors import FileWaitTimeout, RequestError, StateError, ValidationError
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.imaging.retry import readRetryDicomFromDataInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    generate_series(folder, num_volumes=6, shape=(32, 32, 8), scan=13)
    return folder


@pytest.fixture
def scanner(tmp_path):
    folder = tmp_path / "scanner"
    folder.mkdir()
    return folder


@pytest.fixture
def di():
    data = DataInterface(allowedDirs=["*"], allowedFileTypes=["*"])
    yield data
    data.close()


def start_replay(series, scanner, tr=0.1, **kw):
    thread = threading.Thread(
        target=replay_series, args=(series, scanner), kwargs={"tr": tr, **kw}
    )
    thread.start()
    return thread


def test_stream_by_tr_pattern_in_order_and_anonymized(di, series, scanner):
    replay = start_replay(series, scanner, mode="pieces", chunk_size=8192, piece_pause=0.003)
    stream = di.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 1000)
    times = []
    for tr in range(6):
        ds = di.getImageData(stream, tr, timeout=5)
        times.append(time.monotonic())
        assert ds.InstanceNumber == tr + 1
        assert str(ds.PatientName) == "" and ds.get("PatientID") in ("", None)
    replay.join()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) > 0.05  # each volume waited for its own file


def test_stream_with_a_glob_takes_the_ith_file(di, series, scanner):
    # the seed's example: initScannerStream(dir, 'samp*.dcm', minFileSize)
    replay = start_replay(
        series, scanner, tr=0.05, mode="rename", rename=lambda i, p: f"samp{i + 1}.dcm"
    )
    stream = di.initScannerStream(str(scanner), "samp*.dcm", 1000, anonymize=False)
    numbers = [di.getImageData(stream, timeout=5).InstanceNumber for _ in range(6)]
    replay.join()
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert str(di.getImageData(stream, 0, timeout=1).PatientName) == "Doe^Jane"


def test_next_index_and_timeouts(di, series, scanner):
    stream = di.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 0)
    start = time.monotonic()
    with pytest.raises(FileWaitTimeout) as info:
        di.getImageData(stream, 3, timeout=0.4)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, RequestError)
    assert "volume 3" in str(info.value) and "001_000013_000003.dcm" in str(info.value)
    assert 0.35 < time.monotonic() - start < 2
    with pytest.raises(ValidationError, match="timeout must be > 0"):
        di.getImageData(stream, 0, timeout=0)
    with pytest.raises(ValidationError, match="unknown stream id"):
        di.getImageData(stream + 10, 0, timeout=1)
    with pytest.raises(ValidationError, match="no {TR} field|unfilled fields"):
        di.initScannerStream(str(scanner), "001_{SCAN:06d}_{TR:06d}.dcm", 0)


def test_watch_and_bare_names_like_the_seed(di, series, scanner):
    # dataInterface.initWatch('/tmp/dicoms', 'samp*.dcm', minFileSize)
    # readRetryDicomFromDataInterface(dataInterface, 'samp3.dcm', timeout=10)
    with pytest.raises(StateError, match="initWatch"):
        di.watchFile("samp3.dcm")
    replay = start_replay(
        series, scanner, tr=0.05, mode="pieces", rename=lambda i, p: f"samp{i + 1}.dcm"
    )
    di.initWatch(str(scanner), "samp*.dcm", 1000)
    dicom = readRetryDicomFromDataInterface(di, "samp3.dcm", timeout=10)
    assert dicom is not None and dicom.InstanceNumber == 3
    raw = di.watchFile(str(scanner / "samp4.dcm"), timeout=5)
    assert raw == (series / "001_000013_000003.dcm").read_bytes()
    replay.join()
    assert readRetryDicomFromDataInterface(di, "samp99.dcm", timeout=0.3) is None
    with pytest.raises(ValidationError, match="not in the watched folder"):
        di.watchFile(str(series / "001_000013_000001.dcm"), timeout=1)


def test_demo_step_paces_existing_files(di, series):
    stream = di.initScannerStream(str(series), "001_000013_{TR:06d}.dcm", 0, demoStep=0.2)
    start = time.monotonic()
    for tr in range(3):
        di.getImageData(stream, tr, timeout=2)
    assert time.monotonic() - start >= 0.38


def test_several_streams_at_once(di, series, scanner):
    a = di.initScannerStream(str(series), "001_000013_{TR:06d}.dcm", 0)
    b = di.initScannerStream(str(series), "*.dcm", 0)
    assert a != b
    assert di.getImageData(a, 2, timeout=1).InstanceNumber == 3
    assert di.getImageData(b, 4, timeout=1).InstanceNumber == 5
    original = read_dicom_file(series / "001_000013_000004.dcm")
    assert di.getImageData(b, 4, timeout=1).PixelData == original.PixelData


@pytest.fixture
def full_parses(monkeypatch):
    """The sizes of the byte strings parsed as DICOM anywhere (reading, checking)."""
    from rtcloud.imaging import dicom_read

    sizes = []
    real, real_fast = dicom_read.parse_dicom, dicom_read.read_dicom_fast

    def counting(data):
        sizes.append(len(data))
        return real(data)

    def counting_split(data, pixel_data=None):
        if pixel_data is not None:  # a file read in two parts (parse_dicom comes here too)
            sizes.append(len(data) + len(pixel_data))
        return real_fast(data, pixel_data)

    monkeypatch.setattr(dicom_read, "parse_dicom", counting)
    monkeypatch.setattr(dicom_read, "read_dicom_fast", counting_split)
    return sizes


@pytest.mark.parametrize("pattern", ["001_000013_{TR:06d}.dcm", "001_000013_*.dcm"])
def test_each_volume_is_parsed_once_in_full(di, series, scanner, full_parses, pattern):
    sizes = {p.stat().st_size for p in series.glob("*.dcm")}
    replay = start_replay(series, scanner, tr=0.05, mode="pieces", chunk_size=4096)
    stream = di.initScannerStream(str(scanner), pattern, 1000, anonymize=False)
    for tr in range(6):
        ds = di.getImageData(stream, tr, timeout=5)
        original = read_dicom_file(series / f"001_000013_{tr:06d}.dcm")
        assert ds.InstanceNumber == tr + 1 and ds.PixelData == original.PixelData
    replay.join()
    full = [size for size in full_parses if size in sizes]
    assert len(full) == 6 + 6  # one parse per volume in the stream, one above (read_dicom_file)
    assert len(full_parses) - len(full) <= 6  # at most one partial parse per volume


def test_several_callers_of_one_volume_get_their_own_dataset(di, series, scanner):
    stream = di.initScannerStream(str(scanner), "001_000013_{TR:06d}.dcm", 1000)
    results, errors = [], []

    def get():
        try:
            results.append(di.getImageData(stream, 2, timeout=5))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=get) for _ in range(5)]
    for thread in threads:
        thread.start()
    replay = start_replay(series, scanner, tr=0.02, mode="pieces", chunk_size=8192)
    for thread in threads:
        thread.join(10)
    replay.join()
    assert errors == [] and len(results) == 5
    assert len({id(ds) for ds in results}) == 5  # anonymized in place: never shared
    assert all(str(ds.PatientName) == "" and ds.InstanceNumber == 3 for ds in results)
    assert len({ds.SOPInstanceUID for ds in results}) == 1


def test_streams_of_earlier_runs_do_not_pile_up(tmp_path):
    """Every initScannerStream (a run, and the server's re-open after each reconnect) left
    its folder watch running: threads and inotify handles grew until the system's limit."""
    import threading

    from rtcloud.interfaces.data import MAX_STREAMS

    scanner = tmp_path / "scanner"
    scanner.mkdir()
    di = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".dcm"])
    try:
        first = di.initScannerStream(str(scanner), "*.dcm", 0)
        threads = threading.active_count()
        ids = [di.initScannerStream(str(scanner), "*.dcm", 0) for _ in range(3 * MAX_STREAMS)]
        assert threading.active_count() <= threads + MAX_STREAMS * 4
        with pytest.raises(ValidationError, match="was closed"):
            di.getImageData(first, 0, timeout=0.1)
        (scanner / "a.dcm").write_bytes(b"not even DICOM")  # the newest stream still watches
        with pytest.raises(Exception) as info:
            di.getImageData(ids[-1], 0, timeout=2)
        assert "was closed" not in str(info.value)
    finally:
        di.close()
    assert threading.active_count() <= threads
