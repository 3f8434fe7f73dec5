"""Latency, round trips, throughput and memory of the real chain, with real processes.

One command measures what issue 4 item 7 asks for, printing tables and writing JSON:

(a) for every volume, the time from the moment its DICOM file is complete in the scanner
    folder to the moment the experiment script holds the pydicom dataset from
    ``getImageData``: for the real 457 KB Siemens sample files (replicated to N volumes) and
    for 1.5 MB multiband-size synthetic volumes, each written in place in pieces and renamed
    into place; in ``remote`` mode (the target) and ``server`` / ``local`` for comparison;
(b) ``setResult`` and (c) ``plotDataPoint`` round trips;
(d) ``getFile`` / ``putFile`` of 10 MB and 100 MB (in a session of their own);
(e) with ``--sustained``: 1000 volumes at TR 0.5 s in remote mode, with volumes lost,
    first-vs-last latency and the RSS of every process sampled every second;

then judges the targets (PASS / FAIL) next to the original RT-Cloud's numbers. Modes:

- ``local``: the script reads the folder itself (no server);
- ``server``: ``rtcloud serve`` in another process; the script talks to it over RPyC;
- ``remote``: ``rtcloud serve --remote`` plus ``rtcloud data-service`` and ``rtcloud
  subject-service`` processes: two hops (RPyC, then WebSocket), as on three computers.

Everything runs on 127.0.0.1 with port 0 and temporary folders; every process is stopped at
the end, on errors and on Ctrl-C. Examples::

    python benchmarks/bench_pipeline.py                   # (a)-(d), about 5 minutes
    python benchmarks/bench_pipeline.py --sustained       # plus (e) at full size (+8.5 min)
    python benchmarks/bench_pipeline.py --quick           # smoke version, under a minute
    python benchmarks/bench_pipeline.py --json benchmarks/results/pipeline.json

See ``benchmarks/README.md`` for what is measured how, and the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import report, stats  # noqa: E402
from benchlib.processes import BenchError, CpuMeter, Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"
PATTERN = "vol_{TR:06d}.dcm"
MODES = ("remote", "server", "local")
DATA = ("siemens", "synthetic")
WRITES = ("pieces", "rename")

#: Settings of a full run and of ``--quick``; explicit options override either.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "volumes": 200,
        "tr": 0.1,
        "modes": "remote,server,local",
        "data": "siemens,synthetic",
        "writes": "pieces,rename",
        "calls": 1000,
        "file_sizes": "10,100",
        "file_repeats": 3,
        "sustained_volumes": 1000,
        "sustained_tr": 0.5,
    },
    "quick": {
        "volumes": 30,
        "tr": 0.1,
        "modes": "remote",
        "data": "siemens,synthetic",
        "writes": "pieces,rename",
        "calls": 200,
        "file_sizes": "10,100",
        "file_repeats": 1,
        "sustained_volumes": 100,
        "sustained_tr": 0.1,
    },
}


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------- options


def _csv(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults are the full run's; --quick lowers them (explicit options still win).",
    )
    parser.add_argument("--quick", action="store_true", help="smoke version (under a minute)")
    parser.add_argument(
        "--sustained", action="store_true", help="add (e) at full size: 1000 volumes, TR 0.5 s"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--volumes", type=int, help="volumes per (a) case (default 200)")
    parser.add_argument("--tr", type=float, help="TR of the (a) cases in seconds (default 0.1)")
    parser.add_argument("--modes", help="modes for (a)-(d) (default remote,server,local)")
    parser.add_argument("--data", help="(a) data: siemens,synthetic (default both)")
    parser.add_argument("--writes", help="(a) write modes: pieces,rename (default both)")
    parser.add_argument("--calls", type=int, help="(b), (c) calls each (default 1000; 0: skip)")
    parser.add_argument("--file-sizes", help="(d) sizes in MB (default 10,100; none: skip)")
    parser.add_argument("--file-repeats", type=int, help="(d) repeats per size (default 3)")
    parser.add_argument("--sustained-volumes", type=int, help="(e) volumes (default 1000)")
    parser.add_argument("--sustained-tr", type=float, help="(e) TR in seconds (default 0.5)")
    parser.add_argument("--no-sustained", action="store_true", help="skip (e) even with --quick")
    parser.add_argument(
        "--sample-dicoms",
        type=Path,
        default=SAMPLE_DICOMS,
        help=f"folder of the real Siemens files (default {SAMPLE_DICOMS})",
    )
    parser.add_argument(
        "--synthetic-shape",
        default="96,96,72",
        help="voxels of the synthetic volumes (default 96,96,72: a 1.5 MB file)",
    )
    parser.add_argument("--rss-interval", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args(argv)

    profile = PROFILES["quick" if args.quick else "full"]
    explicit_sustained = args.sustained_volumes is not None or args.sustained_tr is not None
    for key in profile:
        if getattr(args, key) is None:
            # --sustained means the full-size run even with --quick
            source = (
                PROFILES["full"] if args.sustained and key.startswith("sustained") else profile
            )
            setattr(args, key, source[key])
    args.run_sustained = (args.sustained or args.quick or explicit_sustained) and not (
        args.no_sustained
    )
    args.modes = _csv(args.modes, MODES, "modes")
    args.data = _csv(args.data, DATA, "data")
    args.writes = _csv(args.writes, WRITES, "write modes")
    sizes = args.file_sizes.strip().lower()
    args.file_sizes = [] if sizes in ("", "none", "0") else [int(s) for s in sizes.split(",")]
    args.synthetic_shape = tuple(int(v) for v in args.synthetic_shape.split(","))
    if args.volumes < 1 or args.tr <= 0 or args.sustained_volumes < 2 or args.sustained_tr <= 0:
        raise SystemExit("--volumes and --sustained-volumes must be >= 1 and 2, TRs > 0")
    return args


# ---------------------------------------------------------------------------- data


def replicate(files: list[Path], dest: Path, count: int) -> list[Path]:
    """``count`` TR-numbered names in ``dest`` cycling through ``files`` (symlinks, or copies)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        target = dest / PATTERN.format(TR=i)
        if os.path.lexists(target):
            target.unlink()  # never write through an old link into the source files
        try:
            target.symlink_to(files[i % len(files)].resolve())
        except OSError:
            shutil.copyfile(files[i % len(files)], target)
        out.append(target)
    return out


def pixel_bytes(path: Path) -> int:
    import pydicom

    return len(pydicom.dcmread(path).PixelData)


class Sources:
    """The series to replay: real Siemens files (if present) and synthetic multiband ones."""

    def __init__(self, args: argparse.Namespace, work: Path, skipped: list[str]) -> None:
        self.args = args
        self.work = work
        self.siemens: list[Path] = []
        folder = args.sample_dicoms
        if folder.is_dir():
            self.siemens = sorted(folder.glob("*.dcm"))
        if not self.siemens:
            skipped.append(
                f"no Siemens sample DICOMs in {folder}: the 457 KB cases of (a) are skipped "
                "(targets (a) NOT RUN); give the folder with --sample-dicoms"
            )
        self._synthetic: list[Path] = []
        self._series: dict[tuple[str, int], list[Path]] = {}

    def synthetic(self, count: int) -> list[Path]:
        """At least ``count`` distinct synthetic volumes (generated once, then reused)."""
        if len(self._synthetic) < count:
            from rtcloud.simulate.synthetic import generate_series

            shape = self.args.synthetic_shape
            log(f"generating {count} synthetic volumes of {shape[0]}x{shape[1]}x{shape[2]} ...")
            folder = self.work / "synthetic-unique"
            shutil.rmtree(folder, ignore_errors=True)
            self._synthetic = generate_series(
                folder,
                num_volumes=count,
                shape=shape,
                tr_ms=int(round(self.args.tr * 1000)),
                pattern=PATTERN,
            )
        return self._synthetic[:count]

    def series(self, data: str, count: int, name: str) -> list[Path]:
        """``count`` files of ``data`` under TR-numbered names (made once, then reused)."""
        key = (data, count)
        if key not in self._series:
            if data == "siemens":
                files = replicate(self.siemens, self.work / f"src-{name}", count)
            else:
                unique = list(self.synthetic(min(count, max(self.args.volumes, 200))))
                if len(unique) >= count:
                    files = unique[:count]
                else:
                    files = replicate(unique, self.work / f"src-{name}", count)
            self._series[key] = files
        return self._series[key]


# ---------------------------------------------------------------------------- runs


def run_stream(
    mode: str,
    files: list[Path],
    write: str,
    tr: float,
    work: Path,
    name: str,
    rss_interval: float,
    feedback: bool = False,
    call: str = "getImageData",
    files_per_volume: int = 1,
    expected_bytes: int | None = None,
) -> dict[str, Any]:
    """Replay ``files`` at TR pace into a fresh scanner folder while a script streams them.

    ``call`` is what the script asks for each volume (``getImageData``, or ``getVolume`` for
    a NIfTI image of any layout); with ``files_per_volume`` > 1 (one file per slice) the
    latency of a volume counts from its last file."""
    from rtcloud.simulate.replay import replay_series

    scanner = work / f"scanner-{name}"
    scanner.mkdir(parents=True)
    volumes = len(files) // files_per_volume
    written: dict[int, float] = {}
    got: dict[int, list[Any]] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start_replay(info: dict[str, Any]) -> None:
        thread = threading.Thread(
            target=replay_series,
            args=(files, scanner),
            kwargs={
                "tr": tr,
                "mode": write,
                "start_delay": 0.5,
                "stop_event": stop,
                "on_volume": lambda i, p, t: written.__setitem__(i, t),
                "rename": lambda i, p: PATTERN.format(TR=i),
                "files_per_volume": files_per_volume,
            },
            name="replay",
            daemon=True,
        )
        threads.append(thread)
        thread.start()

    spec = {
        "stream": {
            "dir": str(scanner),
            "pattern": PATTERN,
            "volumes": volumes,
            "first_timeout": 60.0,
            "timeout": max(10.0, 10 * tr),
            "feedback": feedback,
            "call": call,
        }
    }
    timeout = 120 + volumes * (tr + 0.2)
    begin = time.monotonic()
    code = git_commit()  # others may commit while we run: each session names its code
    session = Session(mode, work / f"session-{name}", work, rss_interval=rss_interval)
    cpu = CpuMeter()
    try:
        with session:
            result = session.run_script(
                spec, timeout, on_ready=start_replay, on_volume=lambda v: got.__setitem__(v[0], v)
            )
        samples = {k: list(v) for k, v in session.sampler.samples.items()}
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        shutil.rmtree(scanner, ignore_errors=True)
    cpu_use = cpu.stop()
    check_mode(mode, result["info"])
    expected_pixels = expected_bytes if expected_bytes is not None else pixel_bytes(files[0])
    latencies: list[float] = []
    per_volume: list[float | None] = []
    incomplete = 0
    for i in range(volumes):
        entry = got.get(i)
        last = (i + 1) * files_per_volume - 1  # the volume's last file
        if entry is None or entry[1] is None or last not in written:
            per_volume.append(None)
            continue
        if entry[3] != expected_pixels:
            incomplete += 1
        latency = entry[1] - written[last]
        latencies.append(latency)
        per_volume.append(latency)
    window = result["window"]
    return {
        "mode": mode,
        "write": write,
        "call": call,
        "files_per_volume": files_per_volume,
        "volumes": volumes,
        "tr_s": tr,
        "file_bytes": files[0].stat().st_size,
        "received": result["stream"]["received"],
        "lost": volumes - result["stream"]["received"],
        "incomplete": incomplete,
        "late": sum(1 for v in latencies if v > tr),
        "errors": result["stream"]["errors"],
        "latency": stats.summary_ms(latencies),
        "latency_ms": [None if v is None else round(v * 1000, 3) for v in per_volume],
        "feedback": {
            "setResult": stats.summary_ms(result["stream"]["setResult"]),
            "plotDataPoint": stats.summary_ms(result["stream"]["plot"]),
        }
        if feedback
        else None,
        "script_info": result["info"],
        "page_messages": session.page_messages,
        "server_warnings": session.server_warnings[:50],
        "startup_s": session.startup_s,
        "shutdown_s": session.shutdown_s,
        "process_endings": session.endings,
        "cpu": cpu_use,
        "code": code,
        "elapsed_s": time.monotonic() - begin,
        "rss": {
            k: stats.rss_summary(v, window, result["hwm_mb"].get(k)) for k, v in samples.items()
        },
        "_samples": samples,
        "_window": window,
    }


def check_mode(mode: str, info: dict[str, Any]) -> None:
    """The script must really have run the way the mode says (not silently fallen back)."""
    expected = {
        "local": {"project_server": False, "data_remote": False, "subject_remote": False},
        "server": {"project_server": True, "data_remote": False, "subject_remote": False},
        "remote": {"project_server": True, "data_remote": True, "subject_remote": True},
    }[mode]
    if info != expected:
        raise BenchError(f"the script ran as {info}, not as mode {mode!r} expects ({expected})")


def run_calls_and_files(
    mode: str, args: argparse.Namespace, work: Path, blobs: dict[int, Path]
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.calls > 0:
        spec["calls"] = {"n": args.calls, "warmup": 20}
    if blobs:
        out = work / "blobs" / f"put-{mode}"
        spec["files"] = {
            "repeats": args.file_repeats,
            "items": [
                {
                    "mb": mb,
                    "bytes": path.stat().st_size,
                    "src": str(path),
                    "dst": str(out / f"blob{mb}.put.bin"),
                }
                for mb, path in blobs.items()
            ],
        }
    timeout = 120 + args.calls * 0.2 + sum(blobs) * args.file_repeats * 2 / 2.0
    session = Session(
        mode, work / f"session-calls-files-{mode}", work, rss_interval=args.rss_interval
    )
    code = git_commit()
    cpu = CpuMeter()
    with session:
        result = session.run_script(spec, timeout)
    cpu_use = cpu.stop()
    samples = {k: list(v) for k, v in session.sampler.samples.items()}
    check_mode(mode, result["info"])
    out_calls = None
    if "calls" in result:
        out_calls = {
            name: stats.summary_ms(result["calls"][name])
            for name in ("setResult", "plotDataPoint")
        }
        for summary in out_calls.values():
            summary["warmup_calls_excluded"] = result["calls"]["warmup"]
    out_files: dict[str, Any] = {}
    for mb, f in result.get("files", {}).items():
        put_path = Path(spec["files"]["items"][0]["dst"]).parent / f"blob{mb}.put.bin"
        if put_path.stat().st_size != f["bytes"]:
            raise BenchError(f"putFile wrote {put_path.stat().st_size} bytes, not {f['bytes']}")
        gets = [f["bytes"] / 1e6 / s for s in f["getFile_s"]]
        puts = [f["bytes"] / 1e6 / s for s in f["putFile_s"]]
        out_files[mb] = {
            "bytes": f["bytes"],
            "getFile_MBps": statistics.median(gets),
            "putFile_MBps": statistics.median(puts),
            "getFile_MBps_all": gets,
            "putFile_MBps_all": puts,
        }
    rss = {k: stats.rss_summary(v, None, result["hwm_mb"].get(k)) for k, v in samples.items()}
    if out_calls is not None and session.page_messages is not None:
        plotted = session.page_messages.get("plotDataPoint", 0)
        if plotted < args.calls:  # the points must really have reached the open page
            raise BenchError(f"the experimenter page got {plotted} of {args.calls} plot points")
    return {
        "calls": out_calls,
        "page_messages": session.page_messages,
        "files": out_files,
        "rss": rss,
        "server_warnings": session.server_warnings[:50],
        "process_endings": session.endings,
        "cpu": cpu_use,
        "code": code,
    }


def make_blobs(folder: Path, sizes: list[int]) -> dict[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {}
    for mb in sizes:
        path = folder / f"blob{mb}.bin"
        with open(path, "wb") as fh:
            for _ in range(mb):
                fh.write(os.urandom(1_000_000))
        blobs[mb] = path
    return blobs


# ---------------------------------------------------------------------------- main


def git_commit() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(
                ["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "src")
    diff = git("diff", "HEAD", "--", "src")
    return {
        "git_commit": git("rev-parse", "--short", "HEAD") or None,
        # others may be editing src/ while this runs: name the exact state measured
        "src_uncommitted_files": len(changed.splitlines()) if changed else 0,
        "src_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def meta(argv: list[str]) -> dict[str, Any]:
    try:
        from rtcloud import __version__ as version
    except ImportError:
        version = None
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        **git_commit(),
        "rtcloud_version": version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_average(),
        "command": " ".join(["python benchmarks/bench_pipeline.py", *argv]),
    }


def attempt(results: dict[str, Any], part: str, fn: Callable[[], Any]) -> Any:
    """Run one part; a failure of the system under test is recorded and the rest goes on."""
    try:
        return fn()
    except BenchError as exc:
        message = str(exc)
    except Exception:
        message = traceback.format_exc()
    log(f"  FAILED: {message}")
    results["errors"].append({"part": part, "message": message})
    return None


def _brief(case: dict[str, Any]) -> str:
    lat = case["latency"]
    if not lat.get("n"):
        return f"no volume received, {case['lost']} lost"
    return (
        f"median {lat['median_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f}"
        f" ms, {case['lost']} lost ({case['elapsed_s']:.0f} s)"
    )


def run_all(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    sources = Sources(args, work, results["skipped"])
    cases = [
        (mode, data, write)
        for mode in args.modes
        for data in args.data
        for write in args.writes
        if data != "siemens" or sources.siemens
    ]
    for number, (mode, data, write) in enumerate(cases, 1):
        name = f"{mode}-{data}-{write}"
        files = sources.series(data, args.volumes, f"{data}-{args.volumes}")
        log(
            f"[{number}/{len(cases)}] (a) {mode}, {data} {files[0].stat().st_size / 1000:.0f} KB,"
            f" {write}: {args.volumes} volumes at TR {args.tr:g} s ..."
        )

        def one(
            mode: str = mode, files: list[Path] = files, write: str = write, name: str = name
        ) -> Any:
            return run_stream(mode, files, write, args.tr, work, name, args.rss_interval)

        case = attempt(results, f"(a) {name}", one)
        if case is not None:
            case["data"] = data
            case.pop("_samples")
            case.pop("_window")
            results["latency"].append(case)
            log(f"  {_brief(case)}")

    if args.calls > 0 or args.file_sizes:
        blobs = make_blobs(work / "blobs", args.file_sizes) if args.file_sizes else {}
        for mode in args.modes:
            log(
                f"(b)-(d) {mode}: {args.calls} setResult + {args.calls} plotDataPoint, "
                f"getFile/putFile {args.file_sizes} MB x {args.file_repeats} ..."
            )
            out = attempt(
                results,
                f"(b)-(d) {mode}",
                lambda mode=mode: run_calls_and_files(mode, args, work, blobs),
            )
            if out is None:
                continue
            if out["calls"]:
                results["calls"][mode] = out["calls"]
                sr, pl = out["calls"]["setResult"], out["calls"]["plotDataPoint"]
                log(
                    f"  setResult median {sr['median_ms']:.3f} ms p99 {sr['p99_ms']:.3f} ms; "
                    f"plotDataPoint median {pl['median_ms']:.3f} ms p99 {pl['p99_ms']:.3f} ms"
                )
            if out["files"]:
                results["files"][mode] = out["files"]
                for mb, f in out["files"].items():
                    log(
                        f"  {mb} MB: getFile {f['getFile_MBps']:.0f} MB/s, "
                        f"putFile {f['putFile_MBps']:.0f} MB/s"
                    )
            results["rss"][f"calls+files {mode}"] = out["rss"]
            results["calls_files_sessions"][mode] = {
                "server_warnings": out["server_warnings"],
                "process_endings": out["process_endings"],
                "page_messages": out["page_messages"],
                "cpu": out["cpu"],
                "code": out["code"],
            }
            shutil.rmtree(work / "blobs" / f"put-{mode}", ignore_errors=True)
        shutil.rmtree(work / "blobs", ignore_errors=True)

    if not args.run_sustained:
        results["skipped"].append("(e) sustained run not run: add --sustained (about 9 minutes)")
        return
    data = "siemens" if sources.siemens else "synthetic"
    n, tr = args.sustained_volumes, args.sustained_tr
    files = sources.series(data, n, f"{data}-{n}")
    size_kb = files[0].stat().st_size / 1000
    log(
        f"(e) sustained: {n} volumes at TR {tr:g} s, remote, {data} {size_kb:.0f} KB in pieces, "
        f"with setResult + plotDataPoint per volume (about {n * tr:.0f} s) ..."
    )
    results["sustained"] = {"volumes": n, "tr_s": tr, "data": data, "write": "pieces"}
    case = attempt(
        results,
        "(e) sustained",
        lambda: run_stream(
            "remote", files, "pieces", tr, work, "sustained", args.rss_interval, True
        ),
    )
    if case is None:
        return
    per_volume = [v for v in case["latency_ms"] if v is not None]
    k = min(100, len(per_volume) // 2)
    samples, window = case.pop("_samples"), case.pop("_window")
    t0 = window[0]
    case.update(
        data=data,
        volumes_received=case["received"],
        first_last_n=k,
        first_median_ms=statistics.median(per_volume[:k]) if k else None,
        last_median_ms=statistics.median(per_volume[-k:]) if k else None,
        rss_series={
            name: [
                [round(t - t0, 2), round(mb, 2)] for t, mb in s if window[0] <= t <= window[1] + 1
            ]
            for name, s in samples.items()
        },
    )
    results["sustained"].update(case)
    log(f"  {_brief(case)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Started in the background by a shell, we would ignore SIGINT, and so would our children
    # (an ignored signal stays ignored across exec): they could then not be stopped gently.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, interrupt)
    results: dict[str, Any] = {
        "meta": meta(argv),
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in vars(args).items()
            if k not in ("json", "sample_dicoms")
        }
        | {"sample_dicoms": str(args.sample_dicoms)},
        "latency": [],
        "calls": {},
        "files": {},
        "rss": {},
        "calls_files_sessions": {},
        "sustained": None,
        "errors": [],
        "skipped": [],
        "interrupted": False,
        "original": report.ORIGINAL,
        "target_values": report.TARGETS,
    }
    work = Path(tempfile.mkdtemp(prefix="rtcloud-bench-"))
    log(f"rtcloud pipeline benchmark: working in {work}")
    begin = time.monotonic()
    cpu = CpuMeter()
    try:
        run_all(args, work, results)
    except KeyboardInterrupt:
        results["interrupted"] = True
        log("\ninterrupted: every process was stopped; partial results follow")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["meta"]["elapsed_s"] = round(time.monotonic() - begin, 1)
    results["meta"]["load_average_at_end"] = load_average()
    results["meta"]["cpu"] = cpu.stop()
    results["targets"] = report.evaluate(results)
    log("")
    log(report.format_report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        log(f"\nwrote {args.json}")
    if results["interrupted"]:
        return 130
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
