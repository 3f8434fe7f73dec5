"""BIDS benchmarks (issue 14): BidsRun appends, the DICOM-to-BIDS stream, writing a run.

    .venv/bin/python benchmarks/bench_bids.py                  # all three, ~2 minutes
    .venv/bin/python benchmarks/bench_bids.py --quick          # smoke version
    .venv/bin/python benchmarks/bench_bids.py --json out.json  # also write the JSON

1. ``append``: ``BidsRun.appendIncremental`` of N (1000) one-volume incrementals of
   64x64x27 int16, each made fresh as a stream makes them and dropped after the append.
   Target: median of the last 100 appends <= 1.25 x the median of the first 100; memory the
   run holds (tracemalloc, after the incrementals are gone) <= 1.1 x the voxel data.
2. ``stream``: remote mode with real processes (``rtcloud serve --remote``, ``rtcloud
   data-service``, and an RT-Cloud-style script, ``benchlib/worker.py``): the shared Siemens
   series (457 KB mosaics, 64x64x27) replayed into the scanner folder at TR pace, renamed
   into place, and streamed with ``bidsInterface.initDicomBidsStream``/``getIncremental``.
   Latency: from just before a file is complete (its rename) to the BidsIncremental in the
   script's hands (after both hops, converted and anonymized in the data service).
   Target: p50 <= 10 ms.
3. ``write``: ``BidsArchive.appendBidsRun`` of a 300-volume run of 64x64x27 int16 into a new
   dataset (description, README, image, sidecar, events), median of R (3) runs.
   Target: <= 2 s.

Prints a table and a PASS/FAIL line per target; ``--json`` writes settings, every sample,
the git commit and the verdicts. Exit status 0 when everything ran.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.processes import Session  # noqa: E402
from benchlib.stats import summary_ms  # noqa: E402

REPO = HERE.parent
SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"
PATTERN = "001_000001_{TR:06d}.dcm"
SHAPE = (64, 64, 27)
TARGETS = {"append_ratio": 1.25, "append_memory_ratio": 1.1, "stream_p50_ms": 10.0, "write_s": 2.0}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return ""


def _incremental(data: np.ndarray, index: int) -> Any:
    from rtcloud.bids.incremental import BidsIncremental

    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    image = nib.Nifti1Image(data, affine)
    metadata = {
        "subject": "01",
        "task": "bench",
        "run": 1,
        "suffix": "bold",
        "datatype": "func",
        "RepetitionTime": 1.5,
        "EchoTime": 0.028,
        "AcquisitionTime": f"12:{index // 40 % 60:02d}:{index * 1.5 % 60:09.6f}",
    }
    return BidsIncremental(image, metadata)


def _fill_run(volumes: int, pool: list[np.ndarray]) -> tuple[Any, list[float]]:
    """A run of ``volumes`` fresh incrementals; the time of each append."""
    from rtcloud.bids.run import BidsRun

    run = BidsRun(subject="01", task="bench", run=1)
    times: list[float] = []
    for index in range(volumes):
        incremental = _incremental(pool[index % len(pool)].copy(), index)
        started = time.perf_counter()
        run.appendIncremental(incremental)
        times.append(time.perf_counter() - started)
        del incremental
    return run, times


def bench_append(volumes: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 2000, SHAPE, dtype=np.int16) for _ in range(8)]
    _fill_run(50, pool)  # warm up (imports, caches)
    gc.collect()
    run, times = _fill_run(volumes, pool)  # timed without tracemalloc, which slows every call
    del run
    gc.collect()
    tracemalloc.start()  # a second run for the memory it holds
    base = tracemalloc.get_traced_memory()[0]
    run, _ = _fill_run(volumes, pool)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    voxels = volumes * int(np.prod(SHAPE)) * 2
    window = min(100, volumes // 2)
    first = statistics.median(times[:window])
    last = statistics.median(times[-window:])
    assert run.numIncrementals() == volumes
    return {
        "volumes": volumes,
        "shape": list(SHAPE),
        "append_s": times,
        "first_median_ms": first * 1000,
        "last_median_ms": last * 1000,
        "ratio": last / first,
        "held_bytes": held,
        "voxel_bytes": voxels,
        "memory_ratio": held / voxels,
    }


def bench_stream(volumes: int, tr: float, work: Path) -> dict[str, Any]:
    from rtcloud.simulate.replay import replay_series

    files = sorted(SAMPLE_DICOMS.glob("*.dcm"))
    if not files:
        raise SystemExit(f"the shared Siemens series is not at {SAMPLE_DICOMS}")
    series = [files[i % len(files)] for i in range(volumes)]
    scanner = work / "scanner"
    scanner.mkdir(parents=True)
    written: dict[int, float] = {}
    got: dict[int, list[Any]] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start_replay(info: dict[str, Any]) -> None:
        thread = threading.Thread(
            target=replay_series,
            args=(series, scanner),
            kwargs={
                "tr": tr,
                "mode": "rename",
                "start_delay": 0.5,
                "stop_event": stop,
                "on_volume": lambda i, p, t: written.__setitem__(i, t),
                "rename": lambda i, p: PATTERN.format(TR=i),
            },
            daemon=True,
        )
        threads.append(thread)
        thread.start()

    spec = {
        "bids_stream": {
            "dir": str(scanner),
            "pattern": PATTERN,
            "volumes": volumes,
            "first_timeout": 60.0,
            "timeout": max(10.0, 10 * tr),
        }
    }
    session = Session("remote", work / "session", work, page=False)
    try:
        with session:
            result = session.run_script(
                spec,
                120 + volumes * (tr + 0.5),
                on_ready=start_replay,
                on_volume=lambda v: got.__setitem__(v[0], v),
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    if not result["info"]["data_remote"]:
        raise SystemExit("the stream benchmark did not run in remote mode")
    latencies = [
        got[i][1] - written[i]
        for i in range(volumes)
        if i in got and got[i][1] is not None and i in written
    ]
    return {
        "volumes": volumes,
        "tr_s": tr,
        "received": result["bids_stream"]["received"],
        "errors": result["bids_stream"]["errors"],
        "latency_s": latencies,
        "latency": summary_ms(latencies),
    }


def bench_write(volumes: int, repeats: int, work: Path) -> dict[str, Any]:
    from rtcloud.bids.archive import BidsArchive
    from rtcloud.bids.run import BidsRun

    rng = np.random.default_rng(1)
    run = BidsRun(subject="01", task="bench", run=1)
    for index in range(volumes):
        run.appendIncremental(_incremental(rng.integers(0, 2000, SHAPE, dtype=np.int16), index))
    times = []
    for repeat in range(repeats):
        root = work / f"dataset-{repeat}"
        started = time.perf_counter()
        path = BidsArchive(root).appendBidsRun(run)
        times.append(time.perf_counter() - started)
        size = Path(path).stat().st_size
        shutil.rmtree(root)
    return {"volumes": volumes, "repeats": repeats, "write_s": times, "image_bytes": size,
            "median_s": statistics.median(times)}  # fmt: skip


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    append = results.get("append")
    if append:
        rows.append({"id": "append_flat", "what": "append: last 100 / first 100 (median)",
                     "measured": append["ratio"], "target": TARGETS["append_ratio"],
                     "ok": append["ratio"] <= TARGETS["append_ratio"]})  # fmt: skip
        rows.append({"id": "append_memory", "what": "append: memory held / voxel data",
                     "measured": append["memory_ratio"], "target": TARGETS["append_memory_ratio"],
                     "ok": append["memory_ratio"] <= TARGETS["append_memory_ratio"]})  # fmt: skip
    stream = results.get("stream")
    if stream:
        p50 = stream["latency"]["median_ms"]
        what = "DICOM complete -> BidsIncremental, remote, p50 ms"
        rows.append({"id": "stream_p50", "what": what,
                     "measured": p50, "target": TARGETS["stream_p50_ms"],
                     "ok": p50 is not None and p50 <= TARGETS["stream_p50_ms"]
                     and stream["received"] == stream["volumes"]})  # fmt: skip
    write = results.get("write")
    if write:
        rows.append({"id": "write_300", "what": f"appendBidsRun of {write['volumes']} volumes, s",
                     "measured": write["median_s"], "target": TARGETS["write_s"],
                     "ok": write["median_s"] <= TARGETS["write_s"]})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--append-volumes", type=int, default=None, help="default 1000")
    parser.add_argument("--stream-volumes", type=int, default=None, help="default 60")
    parser.add_argument("--tr", type=float, default=0.25, help="replay TR of the stream, s")
    parser.add_argument("--write-volumes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=None, help="write repeats (default 3)")
    parser.add_argument("--parts", default="append,stream,write")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    append_volumes = args.append_volumes or (200 if args.quick else 1000)
    stream_volumes = args.stream_volumes or (8 if args.quick else 60)
    write_volumes = 30 if args.quick and args.write_volumes == 300 else args.write_volumes
    repeats = args.repeats or (1 if args.quick else 3)
    parts = set(args.parts.split(","))

    results: dict[str, Any] = {
        "meta": {
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="rtcloud-bench-bids-") as tmp:
        work = Path(tmp)
        if "append" in parts:
            print(f"append: {append_volumes} volumes ...", flush=True)
            results["append"] = bench_append(append_volumes)
        if "stream" in parts:
            print(f"stream: {stream_volumes} volumes, remote ...", flush=True)
            results["stream"] = bench_stream(stream_volumes, args.tr, work / "stream")
        if "write" in parts:
            print(f"write: {write_volumes} volumes x {repeats} ...", flush=True)
            results["write"] = bench_write(write_volumes, repeats, work / "write")
    rows = verdicts(results)
    results["verdicts"] = rows
    print()
    if "append" in results:
        a = results["append"]
        print(f"append   first-100 median {a['first_median_ms']:.4f} ms, last-100 median "
              f"{a['last_median_ms']:.4f} ms; held {a['held_bytes'] / 1e6:.1f} MB for "
              f"{a['voxel_bytes'] / 1e6:.1f} MB of voxels")  # fmt: skip
    if "stream" in results:
        s = results["stream"]
        lat = s["latency"]
        print(f"stream   {s['received']}/{s['volumes']} volumes; p50 {lat['median_ms']:.2f} ms, "
              f"p90 {lat['p90_ms']:.2f} ms, max {lat['max_ms']:.2f} ms")  # fmt: skip
    if "write" in results:
        w = results["write"]
        print(f"write    {w['volumes']} volumes ({w['image_bytes'] / 1e6:.1f} MB image): "
              f"{', '.join(f'{t:.3f}' for t in w['write_s'])} s")  # fmt: skip
    print("\nTargets")
    for row in rows:
        print(f"  {'PASS' if row['ok'] else 'FAIL'}  {row['what']}: {row['measured']:.3f} "
              f"(target {row['target']})")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
