"""The preprocessing and quality-view benchmarks still run end to end (smallest runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SAMPLE_DICOMS.is_dir(), reason=f"no real series at {SAMPLE_DICOMS}"),
]


def test_the_preprocessing_benchmark_writes_sane_json(tmp_path):
    out = tmp_path / "pre.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_preprocess.py")]
    cmd += ["--volumes", "6", "--shapes", "64x64x27", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    (case,) = result["cases"]
    assert case["volumes"] == 5 and case["total"]["median_ms"] > 0
    assert {"motion", "reslice", "smooth", "roi", "glm"} <= set(case["stages_median_ms"])
    assert case["rois"] == ["roi1", "roi2"] and case["problems"] == 0
    assert case["motion_error_max"]["mm"] < 0.2  # the known motion is found
    assert set(result["verdicts"].values()) <= {"PASS", "FAIL"} and result["verdicts"]


def test_the_quality_view_benchmark_writes_sane_json(tmp_path):
    out = tmp_path / "quality.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_quality.py"), "--no-browser"]
    cmd += ["--volumes", "6", "--tr", "0.05", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    script = result["script"]
    assert script["volumes"] == 6 and script["send"]["n"] == 6
    assert script["median_added_ms"] > 0 and script["slice_bytes"] > 0
    assert result["page_messages"]["quality"] >= 6  # the open page got every record
    assert len(result["verdicts"]) == 1
