"""The synthetic scanner's replay: TR pace without drift, pieces, rename, real folders."""

from __future__ import annotations

import threading

import pytest

from rtcloud.errors import ValidationError
from rtcloud.imaging.dicom import dicom_is_complete
from rtcloud.simulate.replay import replay_series, series_files
from rtcloud.simulate.synthetic import generate_series


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    generate_series(folder, num_volumes=8, shape=(32, 32, 8))
    return folder


def test_volumes_arrive_at_tr_pace(series, tmp_path):
    stamps = []
    count = replay_series(
        series, tmp_path, tr=0.1, mode="copy", on_volume=lambda i, p, t: stamps.append(t)
    )
    assert count == 8
    offsets = [t - stamps[0] for t in stamps]
    for i, offset in enumerate(offsets):
        assert abs(offset - 0.1 * i) < 0.03, offsets  # an absolute schedule: no drift


def test_pieces_mode_exposes_partial_files_that_are_not_complete(series, tmp_path):
    seen_partial = []
    stop = threading.Event()
    target = tmp_path / series_files(series)[0].name

    def reader():
        while not stop.is_set():
            if target.exists():
                data = target.read_bytes()
                if 0 < len(data) < (series / target.name).stat().st_size:
                    seen_partial.append(dicom_is_complete(data))

    thread = threading.Thread(target=reader)
    thread.start()
    replay_series(series_files(series)[:1], tmp_path, tr=0, chunk_size=4096, piece_pause=0.005)
    stop.set()
    thread.join()
    assert seen_partial and not any(seen_partial)
    assert target.read_bytes() == (series / target.name).read_bytes()


def test_rename_mode_and_stop(series, tmp_path):
    stop = threading.Event()
    written = []

    def on_volume(i, path, t):
        written.append(path.name)
        if i == 2:
            stop.set()

    count = replay_series(
        series, tmp_path, tr=0.01, mode="rename", stop_event=stop, on_volume=on_volume
    )
    assert count == 3 and len(written) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_real_folder_in_name_order(sample_dicom_dir, tmp_path):
    names = [p.name for p in series_files(sample_dicom_dir)]
    assert names == sorted(names) and len(names) == 11
    assert replay_series(sample_dicom_dir, tmp_path, tr=0, mode="rename") == 11


def test_bad_arguments(series, tmp_path):
    with pytest.raises(ValidationError):
        replay_series(series, tmp_path, mode="teleport")
    with pytest.raises(ValidationError):
        replay_series(tmp_path / "none", tmp_path)
