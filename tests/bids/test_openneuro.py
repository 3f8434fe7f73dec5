"""OpenNeuroCache against a real S3-protocol server (moto) holding a dataset the tests build:
listing, downloading only a run's files, resuming a cut-off download, no half files, and
clear errors for an unknown accession and for no network."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bidstools import assert_valid

from helpers import CuttingProxy
from rtcloud.bids.archive import BidsArchive
from rtcloud.bids.openneuro import OpenNeuroCache
from rtcloud.errors import RequestError, ServiceUnavailableError, ValidationError


def test_lists_and_describes(openneuro_env):
    cache = OpenNeuroCache()
    assert cache.getDatasetList() == ["ds000001"]
    assert cache.isValidAccessionNumber("ds000001")
    assert not cache.isValidAccessionNumber("ds999999")
    assert not cache.isValidAccessionNumber("not-one")
    assert cache.getSubjectList("ds000001") == ["01", "02"]
    assert cache.getDescription("ds000001")["Name"] == "stand-in"
    assert cache.getReadme("ds000001").startswith("A small dataset")


def test_downloads_only_what_a_run_needs_then_uses_the_cache(openneuro_env, tmp_path):
    _, files = openneuro_env
    lines = []
    cache = OpenNeuroCache()
    path = cache.downloadData("ds000001", subject="01", run=2, progress=lines.append)
    got = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file())
    assert got == [
        "README",
        "dataset_description.json",
        "participants.tsv",
        "sub-01/func/sub-01_task-nback_run-02_bold.nii",
        "task-nback_bold.json",
        "task-nback_events.tsv",
    ]
    key = "sub-01/func/sub-01_task-nback_run-02_bold.nii"
    assert Path(path, key).read_bytes() == files[f"ds000001/{key}"]
    assert lines[0].startswith("downloading ds000001") and lines[-1].endswith("MB)")
    assert "100%" in lines[-1]
    assert_valid(path)
    run = BidsArchive(path).getBidsRun(subject="01", run=2)
    assert run.numIncrementals() == 12
    assert list(run.events["trial_type"]) == ["0back", "2back"]
    # a second call downloads nothing
    lines.clear()
    assert cache.downloadData("ds000001", subject="01", run=2, progress=lines.append) == path
    assert lines == []


def test_a_download_cut_off_midway_leaves_no_half_file_and_resumes(openneuro_env):
    endpoint, files = openneuro_env
    target = urlparse(endpoint)
    proxy = CuttingProxy((target.hostname, target.port))
    try:
        cache = OpenNeuroCache(endpoint_url=proxy.url)
        key = "ds000001/sub-02/func/sub-02_task-nback_run-01_bold.nii"
        proxy.arm(20_000)  # bytes toward the client, then the link drops
        with pytest.raises(RequestError, match="cut off.*call again to resume"):
            cache.downloadData("ds000001", subject="02", run=1)
        assert proxy.cuts == 1
        final = cache.cachePath / key
        assert not final.exists()  # no half file where a reader looks
        partial = cache.cachePath / ".partial" / key
        assert 0 < partial.stat().st_size < len(files[key])
        path = cache.downloadData("ds000001", subject="02", run=1)
        assert final.read_bytes() == files[key]
        assert not partial.exists()
        assert BidsArchive(path).getBidsRun(subject="02").numIncrementals() == 12
    finally:
        proxy.close()


def test_unknown_accession_and_bad_input_say_what_to_do(openneuro_env):
    cache = OpenNeuroCache()
    with pytest.raises(ValidationError, match="no dataset ds999999.*openneuro.org"):
        cache.downloadData("ds999999", subject="01", run=1)
    with pytest.raises(ValidationError, match="not an OpenNeuro accession number"):
        cache.downloadData("../etc", subject="01", run=1)
    with pytest.raises(ValidationError, match=r"subjects are \['01', '02'\]"):
        cache.downloadData("ds000001", subject="09", run=1)


def test_without_network_the_error_says_so(tmp_path):
    pytest.importorskip("boto3")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = OpenNeuroCache(tmp_path / "cache", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailableError, match="cannot reach.*network"):
        cache.downloadData("ds000001", subject="01", run=1)
    with pytest.raises(ConnectionError):
        cache.getDatasetList()


@pytest.mark.parametrize(
    "bad",
    [
        "ds000002/../../escaped.txt",
        "ds000002/sub-01/func/../../../../sub-01_task-nback_run-01_bold.nii",
        "ds000002//escaped.txt",
        "ds000002/sub-01\\..\\..\\escaped.txt",
    ],
)
def test_an_object_name_leaving_the_dataset_folder_is_refused(tmp_path, bad):
    """A bucket that is not OpenNeuro's (or a tampered one) cannot make the cache write
    outside the dataset's folder: the download stops before any byte is written."""
    pytest.importorskip("moto", reason="moto's S3 server is a test dependency")
    from s3stand_in import BUCKET, put_dataset, start_s3, uploader

    server, endpoint = start_s3()
    try:
        put_dataset(endpoint, ds="ds000002")
        uploader(endpoint).put_object(Bucket=BUCKET, Key=bad, Body=b"planted")
        cache = OpenNeuroCache(tmp_path / "a" / "b" / "cache", endpoint_url=endpoint)
        with pytest.raises(RequestError, match="outside ds000002's folder.*nothing was"):
            cache.downloadData("ds000002", downloadWholeDataset=True)
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
        # a run's download refuses it too when the name looks like one of the run's files;
        # either way no planted byte lands anywhere
        try:
            cache.downloadData("ds000002", subject="01", run=1)
        except RequestError as exc:
            assert "outside ds000002's folder" in str(exc)
        planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"planted"]
        assert planted == []
    finally:
        server.stop()
