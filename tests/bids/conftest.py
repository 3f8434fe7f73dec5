"""Fixtures for the BIDS tests: an S3 stand-in for OpenNeuro holding a dataset we build."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def s3_openneuro():
    """(endpoint URL, {key: bytes}) of a local S3 server holding ds000001."""
    pytest.importorskip("moto", reason="moto's S3 server is a test dependency")
    from s3stand_in import put_dataset, start_s3

    server, endpoint = start_s3()
    files = put_dataset(endpoint)
    yield endpoint, files
    server.stop()


@pytest.fixture
def openneuro_env(s3_openneuro, tmp_path, monkeypatch):
    """RTCLOUD_OPENNEURO_S3_URL and _CACHE pointing at the stand-in and a fresh folder."""
    endpoint, files = s3_openneuro
    monkeypatch.setenv("RTCLOUD_OPENNEURO_S3_URL", endpoint)
    monkeypatch.setenv("RTCLOUD_OPENNEURO_CACHE", str(tmp_path / "openneuro-cache"))
    return endpoint, files
