"""The pipeline benchmark still runs end to end (so the harness cannot silently rot).

Runs ``benchmarks/bench_pipeline.py`` at its smallest (remote mode, a few small volumes,
few calls, a 1 MB file, a short sustained run) and checks the JSON it writes: every part
present, every volume received, positive latencies and rates, a verdict per target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks" / "bench_pipeline.py"

TARGET_IDS = {
    "a_pieces",
    "a_rename",
    "b",
    "c",
    "d_getFile",
    "d_putFile",
    "e_lost",
    "e_flat",
    "e_rss",
    "e_growth",
}


@pytest.mark.slow
def test_quickest_benchmark_run_writes_sane_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--modes=remote",
        "--writes=pieces",
        "--volumes=4",
        "--tr=0.05",
        "--calls=30",
        "--file-sizes=1",
        "--sustained-volumes=6",
        "--sustained-tr=0.05",
        "--synthetic-shape=32,32,16",
        f"--json={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Targets" in proc.stdout
    results = json.loads(out.read_text())

    assert results["errors"] == []
    assert results["interrupted"] is False
    assert results["meta"]["git_commit"]
    assert results["meta"]["cpus"] >= 1

    cases = results["latency"]
    assert cases, "no latency case ran"
    assert {c["data"] for c in cases} <= {"siemens", "synthetic"}
    assert "synthetic" in {c["data"] for c in cases}
    for case in cases:
        assert case["mode"] == "remote"
        assert case["received"] == case["volumes"] == 4
        assert case["lost"] == 0
        assert case["incomplete"] == 0
        lat = case["latency"]
        assert lat["n"] == 4
        assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p99_ms"] <= lat["max_ms"] < 10_000
        assert case["script_info"] == {
            "project_server": True,
            "data_remote": True,
            "subject_remote": True,
        }
        assert set(case["rss"]) == {"server", "data_service", "subject_service", "script"}

    calls = results["calls"]["remote"]
    for name in ("setResult", "plotDataPoint"):
        assert calls[name]["n"] == 30
        assert 0 < calls[name]["median_ms"] <= calls[name]["p99_ms"]

    files = results["files"]["remote"]["1"]
    assert files["bytes"] == 1_000_000
    assert files["getFile_MBps"] > 0 and files["putFile_MBps"] > 0

    sus = results["sustained"]
    assert sus["volumes"] == sus["volumes_received"] == 6
    assert sus["lost"] == 0
    assert 0 < sus["first_median_ms"] < 10_000 and 0 < sus["last_median_ms"] < 10_000
    assert sus["feedback"]["setResult"]["n"] == 6
    assert set(sus["rss"]) == {"server", "data_service", "subject_service", "script"}
    if sys.platform.startswith("linux"):
        for rss in sus["rss"].values():
            assert 10 < rss["peak_mb"] < 10_000
            assert rss["start_mb"] > 0 and rss["end_mb"] > 0
        assert all(series for series in sus["rss_series"].values())

    targets = {t["id"]: t for t in results["targets"]}
    assert set(targets) == TARGET_IDS
    assert all(t["status"] in ("PASS", "FAIL", "NOT RUN") for t in targets.values())
    for tid in ("b", "c", "e_lost", "e_flat"):
        assert targets[tid]["status"] != "NOT RUN", targets[tid]
    assert targets["e_lost"]["status"] == "PASS"
    assert results["original"]["b_setResult_median_ms"] == 0.9


@pytest.mark.slow
def test_bids_benchmark_runs_and_writes_json(tmp_path):
    """benchmarks/bench_bids.py at its smallest (the stream part with real processes too)."""
    out = tmp_path / "bids.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_bids.py"),
        "--quick",
        "--append-volumes=40",
        "--stream-volumes=3",
        "--tr=0.05",
        "--write-volumes=5",
        f"--json={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Targets" in proc.stdout
    results = json.loads(out.read_text())
    assert {row["id"] for row in results["verdicts"]} == {
        "append_flat",
        "append_memory",
        "stream_p50",
        "write_300",
    }
    assert len(results["append"]["append_s"]) == 40
    assert results["append"]["memory_ratio"] > 0.9  # the run really holds the voxels
    assert results["stream"]["received"] == 3 and len(results["stream"]["latency_s"]) == 3
    assert all(t > 0 for t in results["stream"]["latency_s"])
    assert results["write"]["volumes"] == 5 and results["meta"]["git_commit"]


def test_dicom_push_benchmark_runs_and_writes_sane_json(tmp_path, sample_dicom_dir):
    out = tmp_path / "cstore.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_cstore.py"),
        "--volumes=5",
        "--warmup=1",
        "--tr=0.05",
        f"--sample-dicoms={sample_dicom_dir}",
        f"--json={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["lost"] == 0 and results["errors"] == []
    received, sent = results["latency"]["received_to_script"], results["latency"]["sent_to_script"]
    assert received["n"] == sent["n"] == 4
    assert 0 < received["median_ms"] <= sent["median_ms"]
    assert isinstance(results["target"]["pass"], bool)
