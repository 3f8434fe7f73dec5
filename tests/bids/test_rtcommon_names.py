"""RT-Cloud's BIDS module names import and are ours."""

from __future__ import annotations

import datetime as dt

from bidstools import incremental


def test_rtcommon_bids_modules():
    import rtcloud.bids.archive
    import rtcloud.bids.incremental
    import rtcloud.bids.run
    from rtCommon.bidsArchive import BidsArchive
    from rtCommon.bidsCommon import BIDS_VERSION, DEFAULT_DATASET_DESC, getNiftiData
    from rtCommon.bidsIncremental import BidsIncremental
    from rtCommon.bidsRun import BidsRun
    from rtCommon.imageHandling import bidsIncrementalTimeToNextTr

    assert BidsIncremental is rtcloud.bids.incremental.BidsIncremental
    assert BidsRun is rtcloud.bids.run.BidsRun
    assert BidsArchive is rtcloud.bids.archive.BidsArchive
    assert DEFAULT_DATASET_DESC["BIDSVersion"] == BIDS_VERSION
    inc = incremental()
    assert getNiftiData(inc.image).shape == (8, 9, 5, 1)
    seconds = bidsIncrementalTimeToNextTr(inc, 0.0, now=dt.time(12, 47, 57))
    assert 0 < seconds <= 2.0


def test_rtcommon_open_neuro(tmp_path):
    from rtCommon.openNeuro import OpenNeuroCache

    cache = OpenNeuroCache(cachePath=tmp_path / "cache")
    assert cache.getCachePath() == str(tmp_path / "cache")
    assert cache.getArchivePath("ds000102") == str(tmp_path / "cache" / "ds000102")
