"""BidsInterface in every mode: in the script, in the project server, and in a remote data
service process (incrementals cross both hops by value); DICOM streams, BIDS datasets and
OpenNeuro replays."""

from __future__ import annotations

import threading
import time

import nibabel as nib
import pytest
from bidstools import assert_valid, incremental

from helpers import start_service, wait_for
from rtcloud.bids.archive import BidsArchive
from rtcloud.bids.dicom import dicom_to_incremental
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.bids.run import BidsRun
from rtcloud.errors import MissingMetadataError, RequestError, ValidationError
from rtcloud.imaging.anonymize import anonymize_dicom
from rtcloud.imaging.dicom import read_dicom_file
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.client import ClientInterface
from rtcloud.simulate.replay import replay_series

PATTERN = "001_000013_{TR:06d}.dcm"
ENTITIES = {"subject": "01", "task": "faces", "run": 1}


def expected_incremental(path):
    ds = read_dicom_file(path)
    anonymize_dicom(ds)
    return dicom_to_incremental(ds, ENTITIES)


def start_replay(sample_dicom_dir, scanner, count=5, tr=0.05):
    files = sorted(sample_dicom_dir.glob("*.dcm"))[:count]
    thread = threading.Thread(target=replay_series, args=(files, scanner), kwargs={"tr": tr})
    thread.start()
    return files, thread


def check_dicom_stream(bids, sample_dicom_dir, scanner, tmp_path):
    """Stream 5 replayed volumes; each is what the converter makes of the anonymized file,
    and the run they make is a valid BIDS dataset."""
    scanner.mkdir()
    sid = bids.initDicomBidsStream(str(scanner), PATTERN, 300_000, **ENTITIES)
    files, replay = start_replay(sample_dicom_dir, scanner)
    run = BidsRun()
    try:
        for path in files:
            inc = bids.getIncremental(sid, timeout=30)
            assert isinstance(inc, BidsIncremental)
            assert inc == expected_incremental(path)
            assert not [k for k in inc.getImageMetadata() if "Patient" in k]
            run.appendIncremental(inc)
    finally:
        replay.join()
    with pytest.raises(TimeoutError):
        bids.getIncremental(sid, timeout=0.3)
    again = bids.getIncremental(sid, 2, timeout=5)  # seek back
    assert again == expected_incremental(files[2])
    with pytest.raises(NotImplementedError, match="not known"):
        bids.getNumVolumes(sid)
    bids.closeStream(sid)
    with pytest.raises(ValidationError, match="^unknown BIDS stream id") as unknown:
        bids.getIncremental(sid)
    assert isinstance(unknown.value, KeyError)  # what RT-Cloud's scripts catch
    BidsArchive(tmp_path / "out").appendBidsRun(run)
    assert_valid(tmp_path / "out")


def write_dataset(root, n=6, tr=2.0):
    run = BidsRun()
    for i in range(n):
        run.appendIncremental(incremental(seed=i, RepetitionTime=tr))
    BidsArchive(root).appendBidsRun(run)
    return run


def check_bids_stream(bids, root, run):
    sid = bids.initBidsStream(str(root), subject="01", task="faces", run=1)
    assert bids.getNumVolumes(sid) == run.numIncrementals()
    for i in range(run.numIncrementals()):
        got = bids.getIncremental(sid)
        want = run.getIncremental(i)
        want.removeMetadataField("AcquisitionTime")  # a volume's field, not in the dataset
        assert got == want
    assert bids.getIncremental(sid) is None  # past the end
    assert bids.getIncremental(sid, 3) == bids.getIncremental(sid, volIdx=3)


def test_local_dicom_stream(sample_dicom_dir, tmp_path):
    with BidsInterface(allowedDirs=[str(tmp_path)]) as bids:
        check_dicom_stream(bids, sample_dicom_dir, tmp_path / "scanner", tmp_path)


def test_local_bids_stream_and_pacing(tmp_path):
    run = write_dataset(tmp_path / "ds", n=4, tr=0.2)
    with BidsInterface(allowedDirs=[str(tmp_path)]) as bids:
        check_bids_stream(bids, tmp_path / "ds", run)
        sid = bids.initBidsStream(str(tmp_path / "ds"), subject="01")
        times = []
        for _ in range(3):
            bids.getIncremental(sid, demoStep="tr")
            times.append(time.monotonic())
        gaps = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
        assert min(gaps) >= 0.19  # the run's TR
        with pytest.raises(ValidationError, match="demoStep"):
            bids.getIncremental(sid, demoStep="fast")


def test_bad_input_gets_clear_errors(tmp_path):
    write_dataset(tmp_path / "ds", n=2)
    (tmp_path / "plain").mkdir()
    with BidsInterface(allowedDirs=[str(tmp_path / "ds"), str(tmp_path / "plain")]) as bids:
        with pytest.raises(ValidationError, match="not within the allowed directories"):
            bids.initBidsStream(str(tmp_path), subject="01")
        with pytest.raises(ValidationError, match="not within the allowed directories"):
            bids.initDicomBidsStream(str(tmp_path), PATTERN, 1, subject="01", task="t")
        with pytest.raises(MissingMetadataError, match="task"):
            bids.initDicomBidsStream(str(tmp_path / "plain"), PATTERN, 1, subject="01")
        with pytest.raises(LookupError, match="subjects"):
            bids.initBidsStream(str(tmp_path / "ds"), subject="02")
        with pytest.raises(Exception, match="no dataset_description.json"):
            bids.initBidsStream(str(tmp_path / "plain"), subject="01")
        with pytest.raises(RequestError, match="subject"):
            bids.initOpenNeuroStream("ds000001", run=1)
    with pytest.raises(ValidationError, match="no allowed directories"):
        BidsInterface().initDicomBidsStream(str(tmp_path), PATTERN, 1, subject="01", task="t")


def test_local_openneuro_stream(openneuro_env, tmp_path):
    lines = []
    with BidsInterface(allowedDirs=["*"], progress=lines.append) as bids:
        sid = bids.initOpenNeuroStream("ds000001", subject="01", run=2)
        assert bids.getNumVolumes(sid) == 12
        inc = bids.getIncremental(sid)
        assert inc.getImageDimensions() == (16, 16, 8, 1)
        assert inc.getMetadataField("TaskName") == "nback"
    assert any("100%" in line for line in lines)


def test_server_with_local_data(server_factory, sample_dicom_dir, openneuro_env, tmp_path):
    server = server_factory()
    lines = []
    server.ui.broadcast = lambda message: lines.append(message)  # the page's log
    client = ClientInterface()
    try:
        bids = client.bidsInterface
        assert not bids.isRunningRemote()
        check_dicom_stream(bids, sample_dicom_dir, tmp_path / "scanner", tmp_path)
        run = write_dataset(tmp_path / "ds")
        check_bids_stream(bids, tmp_path / "ds", run)
        sid = bids.initOpenNeuroStream("ds000001", subject="02", run=1)
        assert bids.getNumVolumes(sid) == 12
        assert bids.getIncremental(sid, 11).getImageDimensions() == (16, 16, 8, 1)
        assert any("downloading ds000001" in str(m.get("value")) for m in lines)
    finally:
        client.close()


def test_remote_data_service(server_factory, sample_dicom_dir, openneuro_env, tmp_path):
    server = server_factory(data_remote=True)
    service = start_service("data-service", server, "-d", str(tmp_path), "-f", ".dcm")
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        client = ClientInterface()
        try:
            bids = client.bidsInterface
            assert bids.isRunningRemote()
            check_dicom_stream(bids, sample_dicom_dir, tmp_path / "scanner", tmp_path)
            run = write_dataset(tmp_path / "ds")
            check_bids_stream(bids, tmp_path / "ds", run)
            with pytest.raises(ValidationError, match="not within the allowed directories"):
                bids.initBidsStream("/", subject="01")
            # the OpenNeuro download happens in the data service (its env names the stand-in)
            sid = bids.initOpenNeuroStream("ds000001", subject="01", run=1)
            assert bids.getNumVolumes(sid) == 12
        finally:
            client.close()
    finally:
        service.kill()
        service.communicate(timeout=10)


@pytest.mark.parametrize("layout", ["mosaic", "enhanced", "slices"])
def test_every_layout_the_stream_assembles(layout, tmp_path):
    """Mosaic, enhanced multi-frame and one-file-per-slice series all arrive as incrementals
    whose image is dcm2niix's image of the volume's files, voxel for voxel."""
    from dcm2niix_oracle import SERIES_START, assert_same_image, run_dcm2niix
    from rtcloud.simulate.synthetic import generate_series

    scanner = tmp_path / "scanner"
    files = generate_series(
        scanner, num_volumes=3, shape=(16, 16, 6), scan=1, layout=layout, start=SERIES_START
    )
    per = 6 if layout == "slices" else 1
    pattern = "001_000001_{TR:06d}.dcm"
    with BidsInterface(allowedDirs=[str(tmp_path)]) as bids:
        sid = bids.initDicomBidsStream(str(scanner), pattern, 0, **ENTITIES)
        for index in range(3):
            inc = bids.getIncremental(sid, timeout=10)
            assert inc.getImageDimensions() == (16, 16, 6, 1)
            theirs, sidecar = run_dcm2niix(
                files[index * per : (index + 1) * per], tmp_path / f"dcm2niix-{index}"
            )
            ours = nib.Nifti1Image(inc.getImageData()[..., 0], inc.image.affine, inc.image.header)
            assert_same_image(ours, theirs, exact=True)
            assert inc.getMetadataField("RepetitionTime") == sidecar["RepetitionTime"]


def test_bids_streams_of_earlier_runs_do_not_pile_up(tmp_path):
    """Each initDicomBidsStream (and the server's re-open of it after a reconnect) left a
    folder watch running, as data streams did."""
    from rtcloud.errors import NoSuchStreamError
    from rtcloud.interfaces.data import MAX_STREAMS

    scanner = tmp_path / "scanner"
    scanner.mkdir()
    bids = BidsInterface(allowedDirs=[str(tmp_path)])
    try:
        first = bids.initDicomBidsStream(str(scanner), "*.dcm", 0, subject="01", task="t")
        threads = threading.active_count()
        for _ in range(3 * MAX_STREAMS):
            bids.initDicomBidsStream(str(scanner), "*.dcm", 0, subject="01", task="t")
        assert threading.active_count() <= threads + MAX_STREAMS * 4
        with pytest.raises(NoSuchStreamError):
            bids.getIncremental(first, timeout=0.1)
    finally:
        bids.close()
