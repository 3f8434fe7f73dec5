"""The synthetic scanner's replay: TR pace without drift, pieces, rename, real folders."""

from __future__ import annotations

import threading

import pytest

from rtcloud.errors import ValidationError
from rtcloud.imaging.dicom import dicom_is_complete
from rtcloud.simulate.replay import due_offset, files_per_volume, replay_series, series_files
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
    assert all(t >= due_offset(i, 0.1) - 0.005 for i, t in enumerate(offsets)), offsets
    # an absolute schedule: a late volume does not make the later ones later (a relative one
    # would add up every write's time); within a TR even on a loaded machine
    assert offsets[-1] - due_offset(7, 0.1) < 0.1, offsets


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


def test_a_series_of_slice_files_is_replayed_a_volume_per_tr(tmp_path):
    source = tmp_path / "source"
    generate_series(source, num_volumes=2, shape=(8, 8, 4), layout="slices")
    files = sorted(source.glob("*.dcm"))
    assert len(files) == 8 and files_per_volume(files[0]) == 4
    # four slices spread evenly over each TR
    assert [due_offset(i, 0.2, 4) for i in range(8)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
    )
    stamps = []
    count = replay_series(
        source,
        tmp_path / "scanner",
        tr=0.2,
        mode="copy",
        files_per_volume=4,
        on_volume=lambda i, p, t: stamps.append(t),
    )
    assert count == 8
    offsets = [t - stamps[0] for t in stamps]
    assert all(offset >= 0.05 * i - 0.005 for i, offset in enumerate(offsets)), (
        offsets
    )  # never early


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices", "enhanced-slices"])
def test_generate_and_replay_on_the_command_line(tmp_path, capsys, layout):
    from rtcloud.cli import main
    from rtcloud.imaging.dicom import read_dicom_file
    from rtcloud.imaging.volume import layout_of

    out = tmp_path / "series"
    assert (
        main(["generate", str(out), "--volumes", "2", "--shape", "8x8x3", "--layout", layout]) == 0
    )
    files = sorted(out.glob("*.dcm"))
    assert len(files) == (6 if layout.endswith("slices") else 2)
    # an enhanced file of one frame is a slice
    assert {layout_of(read_dicom_file(path)) for path in files} == {layout.split("-")[-1]}
    assert (
        main(["replay", str(out), str(tmp_path / "scanner"), "--tr", "0.05", "--mode", "copy"])
        == 0
    )
    printed = capsys.readouterr().out
    slices = layout.endswith("slices")
    expected = "replayed 6 files (2 volumes)" if slices else "replayed 2 volumes"
    assert expected in printed
    assert sorted(p.name for p in (tmp_path / "scanner").iterdir()) == [p.name for p in files]
