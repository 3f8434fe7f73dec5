"""DICOM push latency: an image received by the data service -> the dataset in the script.

Real processes in remote mode (``rtcloud serve --remote``, ``rtcloud data-service
--dicom-listen``, ``rtcloud subject-service``, and ``benchlib/worker.py`` as the experiment
script, which opens a stream on the receive folder and calls ``getImageData`` for every
volume). This process is the scanner: one pynetdicom association, a C-STORE of each volume
every TR (the real 457 KB Siemens sample files, each sent as a new instance).

For every volume three times are taken (``time.time()``, one machine, one clock):

- ``sent``: before this process starts the C-STORE (the data then crosses pynetdicom's
  encoder and the loopback connection);
- ``written``: the received file's modification time, set when the data service writes it,
  after it has received and parsed the image (a little after the receipt);
- ``script``: when the script holds the dataset.

``script - written`` is the latency the target is about (receipt -> dataset), without the
data service's own parse and write of the received image (under a millisecond);
``script - sent`` bounds it from above, the sender's encoding and the transfer included.
Target (issue 12): p50 <= 10 ms.

    python benchmarks/bench_cstore.py                 # 200 volumes at TR 0.1 s
    python benchmarks/bench_cstore.py --quick         # 20 volumes
    python benchmarks/bench_cstore.py --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import stats  # noqa: E402
from benchlib.processes import BenchError, CpuMeter, Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"
TARGET_P50_MS = 10.0
LISTENING = re.compile(r"DICOM node \S+ listening on ([\d.]+):(\d+)")


def wait_for_port(log: Path, timeout: float = 60.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            found = LISTENING.search(log.read_text(errors="replace"))
            if found:
                return found.group(1), int(found.group(2))
        time.sleep(0.05)
    raise BenchError(f"the data service did not say where it listens ({log})")


def volumes(sample: Path, count: int) -> list[Any]:
    """``count`` datasets from the real files, each a new instance numbered 0.. in series 13."""
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(sample.glob("*.dcm"))
    if not files:
        raise SystemExit(f"no sample DICOM files in {sample}")
    out = []
    for index in range(count):
        ds = pydicom.dcmread(files[index % len(files)])
        ds.InstanceNumber = index
        ds.SeriesNumber = 13
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out.append(ds)
    return out


def send(address: tuple[str, int], datasets: list[Any], tr: float, sent: dict[int, float]):
    """Push every dataset over one association, one every ``tr`` seconds (in a thread)."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import MRImageStorage

    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(*address, ae_title="RTCLOUD")
    if not assoc.is_established:
        raise BenchError("the data service refused the association")
    errors: list[str] = []
    try:
        start = time.monotonic()
        for index, ds in enumerate(datasets):
            pause = start + index * tr - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent[index] = time.time()
            status = assoc.send_c_store(ds)
            if getattr(status, "Status", None) != 0:
                errors.append(f"volume {index}: status {status}")
    finally:
        assoc.release()
    return errors


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    inbox = work / "data" / "inbox"
    inbox.mkdir(parents=True)
    datasets = volumes(args.sample_dicoms, args.volumes)
    extra = ("--dicom-listen", "127.0.0.1:0", "--dicom-dir", str(inbox), "--calling-ae", "SCANNER")
    meter = CpuMeter()
    with Session("remote", work / "session", work / "data", data_service_args=extra) as session:
        address = wait_for_port(work / "session" / "data_service.log")
        spec = {
            "stream": {
                "dir": str(inbox),
                "pattern": "001_000013_{TR:06d}.dcm",
                "volumes": args.volumes,
                "timeout": 30,
                "first_timeout": 60,
            }
        }
        sent: dict[int, float] = {}
        got: dict[int, float] = {}
        errors: list[str] = []
        sender = threading.Thread(
            target=lambda: errors.extend(send(address, datasets, args.tr, sent)), daemon=True
        )

        def on_volume(item: list[Any]) -> None:
            index, when, error = item[0], item[1], item[2]
            if error:
                errors.append(f"volume {index}: {error}")
            elif when is not None:
                got[int(index)] = float(when)

        result = session.run_script(
            spec, timeout=60 + args.volumes * args.tr * 3,
            on_ready=lambda _: sender.start(), on_volume=on_volume,
        )  # fmt: skip
        sender.join(60)
    cpu = meter.stop()
    written = {i: (inbox / f"001_000013_{i:06d}.dcm").stat().st_mtime_ns / 1e9 for i in got}
    warm = [i for i in sorted(got) if i >= args.warmup]
    from_written = [got[i] - written[i] for i in warm]
    from_sent = [got[i] - sent[i] for i in warm if i in sent]
    summary = {
        "received_to_script": stats.summary_ms(from_written),
        "sent_to_script": stats.summary_ms(from_sent),
    }
    p50 = summary["received_to_script"].get("median_ms")
    return {
        "benchmark": "cstore",
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "volumes": args.volumes,
        "tr_s": args.tr,
        "warmup": args.warmup,
        "received": len(got),
        "lost": args.volumes - len(got),
        "errors": errors[:20] + list(result.get("stream", {}).get("errors", []))[:5],
        "latency": summary,
        "cpu": cpu,
        "target": {"p50_ms": TARGET_P50_MS, "pass": p50 is not None and p50 <= TARGET_P50_MS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 volumes")
    parser.add_argument("--volumes", type=int, help="volumes to push (default 200)")
    parser.add_argument("--tr", type=float, default=0.1, help="seconds between images")
    parser.add_argument("--warmup", type=int, default=3, help="first volumes left out")
    parser.add_argument("--sample-dicoms", type=Path, default=SAMPLE_DICOMS)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.volumes = args.volumes or (20 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="rtcloud-bench-cstore-") as folder:
        results = run(args, Path(folder))
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    lat = results["latency"]
    for name, row in lat.items():
        if row.get("n"):
            print(
                f"{name:20s} n={row['n']:4d} p50={row['median_ms']:.2f} ms "
                f"p90={row['p90_ms']:.2f} ms p99={row['p99_ms']:.2f} ms max={row['max_ms']:.2f} ms"
            )
    verdict = "PASS" if results["target"]["pass"] else "FAIL"
    print(f"target received -> script p50 <= {TARGET_P50_MS} ms: {verdict}")
    print(f"lost {results['lost']} of {results['volumes']}; cpu {results['cpu']}")
    if results["errors"]:
        print("errors:", *results["errors"], sep="\n  ")
    return 0 if results["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
