"""Latency of the scanner-to-script chain, with real processes, over many volumes.

Measures, for each volume, the time from the moment its file is complete in the scanner
folder (the replay's last byte, or its rename) to the moment the experiment script holds the
pydicom dataset from ``getImageData``; then ``setResult`` and ``plotDataPoint`` round trips
and ``getFile``/``putFile`` throughput through the project server. Modes:

- ``local``: the script reads the folder itself (no server);
- ``server``: ``rtcloud serve`` runs in another process; the script talks to it over RPyC;
- ``remote``: as ``server`` with ``--dataRemote --subjectRemote``, plus ``rtcloud
  data-service`` and ``rtcloud subject-service`` processes: two hops (RPyC, then WebSocket).

Peak RSS (VmHWM) of every process is reported (Linux).

Prints a table and writes JSON (``--json FILE``). Example::

    python benchmarks/bench_pipeline.py --volumes 200 --tr 0.1 --files \
        --json benchmarks/results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series

SCRIPT = r"""
import json, os, sys, time
import resource
from rtcloud.interfaces.client import ClientInterface
scanner, volumes, mode, big = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ci = ClientInterface(yesToPrompts=True)
data, subj, web = ci.dataInterface, ci.subjInterface, ci.webInterface
stream = data.initScannerStream(scanner, "vol_{TR:06d}.dcm", 0, anonymize=True)
print("READY", flush=True)
got = []
for tr in range(volumes):
    ds = data.getImageData(stream, tr, timeout=60)
    got.append((tr, time.time()))
def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return out
set_result = timed(lambda: subj.setResult(1, 0, 0.5, 0), 300)
plot = timed(lambda: web.plotDataPoint(1, 0, 0.5), 300)
files = {}
if big != "-":
    for size_mb in (10, 100):
        src = os.path.join(big, f"blob{size_mb}.bin")
        t = time.perf_counter(); payload = data.getFile(src); g = time.perf_counter() - t
        t = time.perf_counter(); data.putFile(src + ".copy", payload); p = time.perf_counter() - t
        files[size_mb] = {"getFile_MBps": size_mb / g, "putFile_MBps": size_mb / p}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"got": got, "setResult": set_result, "plot": plot,
                              "files": files, "script_peak_rss_mb": rss}), flush=True)
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a process (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": pct(ms, 90),
        "p99_ms": pct(ms, 99),
        "max_ms": max(ms),
    }


def run(
    mode: str, volumes: int, tr: float, write: str, work: Path, files: bool
) -> dict[str, object]:
    source, scanner = work / "source", work / f"scanner-{mode}-{write}"
    scanner.mkdir(parents=True)
    if not source.exists():
        generate_series(source, num_volumes=volumes, pattern="vol_{TR:06d}.dcm")
    big = "-"
    if files:
        big = str(work / "files")
        os.makedirs(big, exist_ok=True)
        for size_mb in (10, 100):
            path = Path(big) / f"blob{size_mb}.bin"
            if not path.exists():
                path.write_bytes(os.urandom(size_mb * 1_000_000))
    env = dict(os.environ)
    server = None
    services: list[subprocess.Popen[str]] = []
    if mode in ("server", "remote"):
        env["RTCLOUD_SERVER_INFO"] = str(work / "server.json")
        project = work / "proj"
        (project / "conf").mkdir(parents=True, exist_ok=True)
        (project / "proj.py").write_text("print('unused')\n")
        (project / "conf" / "proj.toml").write_text('subjectName="b"\nrunNum=[1]\nscanNum=[1]\n')
        extra = ["--remote", "--test"] if mode == "remote" else []
        cmd = [sys.executable, "-m", "rtcloud", "serve", "-p", "proj", "-d", str(project)]
        server = subprocess.Popen(
            [*cmd, "--port", "0", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert server.stdout is not None
        address = ""
        for line in server.stdout:
            if "serving project" in line:
                address = line.split("http://")[1].strip().rstrip("/")
                break
        threading.Thread(target=server.stdout.read, daemon=True).start()
        deadline = time.time() + 20
        while not (work / "server.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        if mode == "remote":
            for kind, args in (
                ("data-service", ["-d", str(work), "-f", ".dcm,.bin,.copy"]),
                ("subject-service", ["-o", str(work / "subject-out")]),
            ):
                services.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "rtcloud", kind, "-s", address, "--test", *args],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
            time.sleep(3)  # let both services log in and connect
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(scanner), str(volumes), mode, big],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert script.stdout is not None
    assert script.stdout.readline().strip() == "READY"
    written: dict[int, float] = {}
    replay = threading.Thread(
        target=replay_series,
        args=(source, scanner),
        kwargs={
            "tr": tr,
            "mode": "rename" if write == "rename" else "pieces",
            "on_volume": lambda i, p, t: written.__setitem__(i, t),
        },
    )
    replay.start()
    result = None
    for line in script.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    script.wait()
    replay.join()
    rss = {"script": result["script_peak_rss_mb"] if result else None}
    for name, proc in [
        ("server", server),
        *zip(("data_service", "subject_service"), services, strict=False),
    ]:
        if proc is not None:
            rss[name] = peak_rss_mb(proc.pid)
            proc.terminate()
            proc.wait(10)
    assert result is not None, "the benchmark script failed"
    latencies = [t - written[i] for i, t in result["got"]]
    half = len(latencies) // 2
    return {
        "mode": mode,
        "write": write,
        "volumes": volumes,
        "tr_s": tr,
        "file_bytes": (source / "vol_000000.dcm").stat().st_size,
        "latency": summary(latencies),
        "latency_first_half_median_ms": statistics.median(latencies[:half]) * 1000,
        "latency_second_half_median_ms": statistics.median(latencies[half:]) * 1000,
        "setResult": summary(result["setResult"]),
        "plotDataPoint": summary(result["plot"]),
        "files": result["files"],
        "peak_rss_mb": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--tr", type=float, default=0.1)
    parser.add_argument("--modes", default="local,server,remote")
    parser.add_argument("--writes", default="pieces,rename", help="how files appear")
    parser.add_argument("--files", action="store_true", help="also getFile/putFile 10 and 100 MB")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rtcloud-bench-", dir="/tmp") as tmp:
        for mode in args.modes.split(","):
            for write in args.writes.split(","):
                results.append(run(mode, args.volumes, args.tr, write, Path(tmp), args.files))
    header = f"{'mode':8} {'write':7} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}"
    print(f"{header}  setResult  plot   (ms)")
    for r in results:
        lat = r["latency"]
        print(
            f"{r['mode']:8} {r['write']:7} {lat['median_ms']:8.2f} {lat['p90_ms']:8.2f} "
            f"{lat['p99_ms']:8.2f} {lat['max_ms']:8.2f}  {r['setResult']['median_ms']:9.3f} "
            f"{r['plotDataPoint']['median_ms']:6.3f}"
        )
        print(f"    peak RSS MB: {r['peak_rss_mb']}")
        for size, rates in r["files"].items():
            get, put = rates["getFile_MBps"], rates["putFile_MBps"]
            print(f"    {size} MB: getFile {get:.0f} MB/s, putFile {put:.0f} MB/s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
