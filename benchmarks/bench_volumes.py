"""Latency of volumes of every layout through the real chain, in remote mode (issue 12).

Each case starts fresh processes (``rtcloud serve --remote``, ``rtcloud data-service``,
``rtcloud subject-service`` and an RT-Cloud-style script, as ``bench_pipeline.py`` does),
replays a series into a scanner folder at TR pace (each file written in place in pieces) and
measures, for every volume, the time from the moment its last file is complete to the moment
the script holds it:

- ``slices``: a per-slice series (64x64, 32 slices, one 8 KB file per slice, the slices of a
  volume spread over its TR), ``getVolume``: last slice complete -> NIfTI volume in the script;
- ``multiband``: one 104x104x72 mosaic file per volume (about 1.5 MB), ``getImageData``;
- ``large``: one 160x160x100 mosaic file per volume (about 5 MB), ``getImageData``;
- ``mosaic-nifti``: the real Siemens sample files (457 KB mosaics), ``getVolume``, including
  the conversion to NIfTI (falls back to a synthetic 64x64x30 mosaic without them).

Prints a table and PASS / FAIL per target; ``--json`` writes everything (per-volume
latencies, settings, load average, commit). Example::

    python benchmarks/bench_volumes.py --volumes 100 --json benchmarks/results/volumes.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import PATTERN, SAMPLE_DICOMS, git_commit, replicate, run_stream  # noqa: E402

#: case -> (layout, shape, call, target median ms)
CASES: dict[str, tuple[str, tuple[int, int, int], str, float]] = {
    "slices": ("slices", (64, 64, 32), "getVolume", 5.0),
    "multiband": ("mosaic", (104, 104, 72), "getImageData", 6.0),
    "large": ("mosaic", (160, 160, 100), "getImageData", 10.0),
    "mosaic-nifti": ("siemens", (64, 64, 30), "getVolume", 8.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=100, help="volumes per case (100)")
    parser.add_argument("--tr", type=float, default=0.5, help="TR in seconds (0.5)")
    parser.add_argument("--cases", default=",".join(CASES), help="which cases (all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--sample-dicoms", type=Path, default=SAMPLE_DICOMS)
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; use {sorted(CASES)}")
    return args


def series(case: str, args: argparse.Namespace, work: Path) -> tuple[list[Path], int, int]:
    """The files to replay, the files per volume and the bytes a volume holds."""
    from rtcloud.simulate.synthetic import generate_series

    layout, shape, call, _ = CASES[case]
    voxels = shape[0] * shape[1] * shape[2] * 2
    if layout == "siemens":
        real = sorted(args.sample_dicoms.glob("*.dcm")) if args.sample_dicoms.is_dir() else []
        if real:
            files = replicate(real, work / f"src-{case}", args.volumes)
            from rtcloud.imaging.dicom import read_dicom_file
            from rtcloud.imaging.nifti import dicom_to_nifti

            return files, 1, int(dicom_to_nifti(read_dicom_file(files[0])).dataobj.nbytes)
        layout = "mosaic"
    per = shape[2] if layout == "slices" else 1
    # one-file volumes: a few distinct ones, repeated (the content does not change the
    # timing); slices: every volume its own, as their temporal positions must differ
    distinct = args.volumes if per > 1 else min(args.volumes, 10)
    source = generate_series(
        work / f"gen-{case}",
        num_volumes=distinct,
        shape=shape,
        tr_ms=int(args.tr * 1000),
        layout=layout,
        pattern=PATTERN,
    )
    files = source if per > 1 else replicate(source, work / f"src-{case}", args.volumes)
    if call == "getImageData":
        import pydicom

        return files, per, len(pydicom.dcmread(files[0]).PixelData)
    return files, per, voxels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "settings": {"volumes": args.volumes, "tr_s": args.tr, "cases": args.cases},
        "code": git_commit(),
        "load_average_start": list(os.getloadavg()),
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="rtcloud-bench-volumes-") as tmp:
        work = Path(tmp)
        for case in args.cases:
            files, per, expected = series(case, args, work)
            print(f"[{case}] {len(files)} files, {per} per volume ...", flush=True)
            started = time.monotonic()
            result = run_stream(
                "remote",
                files,
                "pieces",
                args.tr,  # per volume: replay_series spreads a volume's files over it
                work,
                case,
                rss_interval=1.0,
                call=CASES[case][2],
                files_per_volume=per,
                expected_bytes=expected,
            )
            for key in ("_samples", "_window"):
                result.pop(key, None)
            results["cases"][case] = result
            latency = result["latency"]
            print(
                f"  median {latency.get('median_ms', float('nan')):.2f} ms, "
                f"p90 {latency.get('p90_ms', float('nan')):.2f} ms, lost {result['lost']}, "
                f"incomplete {result['incomplete']} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    results["load_average_end"] = list(os.getloadavg())
    print(
        f"\nload average at start {results['load_average_start']}, end "
        f"{results['load_average_end']}"
    )
    nan = float("nan")
    print(
        f"{'case':14} {'call':13} {'median':>8} {'p90':>8} {'p99':>8} "
        f"{'first':>7} {'last':>7}  target"
    )
    for case, result in results["cases"].items():
        latency = result["latency"]
        target = CASES[case][3]
        median = latency.get("median_ms")
        verdict = "PASS" if median is not None and median <= target else "FAIL"
        results["cases"][case]["target_median_ms"] = target
        results["cases"][case]["verdict"] = verdict
        # does a volume cost more late in the run (a folder of thousands of files)?
        got = [v for v in result["latency_ms"] if v is not None]
        k = min(100, len(got) // 3)
        first = statistics.median(got[:k]) if k else nan
        last = statistics.median(got[-k:]) if k else nan
        results["cases"][case]["first_median_ms"] = first
        results["cases"][case]["last_median_ms"] = last
        print(
            f"{case:14} {CASES[case][2]:13} {median or float('nan'):8.2f} "
            f"{latency.get('p90_ms', nan):8.2f} {latency.get('p99_ms', nan):8.2f} "
            f"{first:7.2f} {last:7.2f}  median <= {target:g} ms: {verdict}"
        )
    print("first / last: medians of the first and last third of the volumes (100 at most)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
