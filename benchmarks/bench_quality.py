"""Benchmark: what the Quality tab costs the script, and whether Chromium keeps up with it.

Real processes on 127.0.0.1: ``rtcloud serve --remote --test``, a data service and a subject
service (``benchlib.processes.Session``, as in ``bench_pipeline.py``), and the script
``benchlib/quality_worker.py``, which preprocesses a moving-head run made from the real series
one volume per TR and reports each volume with ``webInterface.sendQuality``.

(a) **Cost to the script.** Per volume the script times ``result.quality(...)`` (building the
    record and its three slices) and ``webInterface.sendQuality`` (the round trip to the
    server, which checks the record, adds the volume's hops and hands it to the open pages),
    next to ``setResult`` and ``plotDataPoint``. Target: the two together add <= 0.2 ms (median).
(b) **The page keeps up.** A real Chromium (Playwright, ``/usr/bin/chromium``) is logged in
    with the Quality tab open (so every record is drawn) for the whole run: by default 1000
    volumes at TR 0.5 s. Every 10 s the benchmark reads the page's JS heap and DOM node
    count (Chrome DevTools ``Performance.getMetrics``) and its counters
    (``window.rtcloudQuality.stats``: records received, the delay from the script's
    ``setResult`` to the record's arrival at the page, draw times). Targets: every record
    arrives; the delay of the last 100 volumes is not above that of the first 100 (+ 1 ms,
    x 1.25); the heap grows by <= 10 MB and the node count by <= 200 from 10 % into the run to
    the end.

    .venv/bin/python benchmarks/bench_quality.py [--volumes 1000] [--tr 0.5] [--json out.json]

Exit status 0 when everything ran (whatever the verdicts), 1 when a part failed.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.processes import BenchError, Session  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SAMPLE_DICOMS = HERE.parent.parent / "shared" / "data" / "sample-dicoms"


def _open_page(playwright: Any, address: str) -> tuple[Any, Any, Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"http://{address}/")
    page.fill("#username", "test")
    page.fill("#password", "test")
    page.click("#login-submit")
    page.wait_for_selector("#ind-browser[data-state='on']")
    page.click("#tab-quality")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    return browser, page, cdp


def _sample(page: Any, cdp: Any, t0: float) -> dict[str, Any]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    stats = page.evaluate(
        "() => { const s = window.rtcloudQuality.stats; return {records: s.records, "
        "draws: s.draws, maxDrawMs: s.maxDrawMs, lag: s.lagMs.slice(-20), "
        "draw: s.drawMs.slice(-20)}; }"
    )
    return {
        "t": time.monotonic() - t0,
        "heap_mb": metrics.get("JSHeapUsedSize", 0) / 2**20,
        "nodes": metrics.get("Nodes"),
        "listeners": metrics.get("JSEventListeners"),
        **stats,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"volumes": args.volumes, "tr": args.tr, "samples": []}
    with tempfile.TemporaryDirectory(prefix="rtcloud-bench-quality-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "data"
        data_dir.mkdir()
        with (
            Session("remote", folder / "session", data_dir, page=True) as session,
            sync_playwright() as pw,
        ):
            browser, page, cdp = (None, None, None)
            if args.browser:
                browser, page, cdp = _open_page(pw, session.address)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "benchlib" / "quality_worker.py"),
                    str(args.volumes),
                    str(args.tr),
                    args.shape,
                ],
                env=session.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            lines: queue.Queue[str | None] = queue.Queue()

            def read() -> None:
                assert proc.stdout is not None
                for text in proc.stdout:
                    lines.put(text.rstrip("\n"))
                lines.put(None)

            threading.Thread(target=read, daemon=True).start()
            t0 = time.monotonic()
            next_sample = t0
            result = None
            tail: list[str] = []
            while result is None:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:
                    raise BenchError("the worker ended without a result:\n" + "\n".join(tail))
                if line:
                    tail = (tail + [line])[-30:]
                if line.startswith("RESULT "):
                    result = json.loads(line[7:])
                elif line.startswith("V "):
                    print(f"  {line[2:]} volumes", flush=True)
                if page is not None and time.monotonic() >= next_sample:
                    out["samples"].append(_sample(page, cdp, t0))
                    next_sample += args.sample_every
            proc.wait(30)
            out["script"] = result
            if page is not None:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # the last records on their way
                    last = _sample(page, cdp, t0)
                    if last["records"] >= args.volumes:
                        break
                    time.sleep(0.2)
                out["samples"].append(last)
                lags = page.evaluate("() => window.rtcloudQuality.stats.lagMs")
                draws = page.evaluate("() => window.rtcloudQuality.stats.drawMs")
                out["page"] = {"lag_ms_last1000": lags, "draw_ms_last1000": draws}
                if args.screenshot:
                    page.screenshot(path=str(args.screenshot))
                browser.close()
        out["page_messages"] = session.page_messages  # counted when the session closed
    return out


def verdicts(out: dict[str, Any]) -> dict[str, str]:
    v: dict[str, str] = {}
    added = out["script"]["median_added_ms"]
    v[f"quality view adds <= 0.2 ms to the script (median {added:.3f} ms)"] = (
        "PASS" if added <= 0.2 else "FAIL"
    )
    samples = out.get("samples") or []
    if samples:
        last = samples[-1]
        v[f"every record reached the page ({last['records']} of {out['volumes']})"] = (
            "PASS" if last["records"] >= out["volumes"] else "FAIL"
        )
        lags = out["page"]["lag_ms_last1000"]
        if len(lags) >= 200:
            first, final = statistics.median(lags[:100]), statistics.median(lags[-100:])
            ok = final <= 1.25 * first + 1.0
            v[f"no growing lag (median {first:.2f} -> {final:.2f} ms)"] = "PASS" if ok else "FAIL"
        warm = [s for s in samples if s["t"] >= 0.1 * out["volumes"] * out["tr"]]
        if warm:
            heap = last["heap_mb"] - warm[0]["heap_mb"]
            nodes = (last["nodes"] or 0) - (warm[0]["nodes"] or 0)
            name = (
                f"bounded page memory (heap {warm[0]['heap_mb']:.1f} -> {last['heap_mb']:.1f} "
                f"MB, nodes {warm[0]['nodes']} -> {last['nodes']})"
            )
            v[name] = "PASS" if heap <= 10 and nodes <= 200 else "FAIL"
    return v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--tr", type=float, default=0.5)
    parser.add_argument("--shape", default="64x64x27")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not SAMPLE_DICOMS.is_dir():
        print(f"NOT RUN: the real series is not at {SAMPLE_DICOMS}")
        return 1
    if args.browser and not Path(CHROMIUM).exists():
        print("no chromium: run with --no-browser, or apt-get install chromium")
        return 1
    print(f"{args.volumes} volumes at TR {args.tr} s ...", flush=True)
    try:
        out = run(args)
    except BenchError as exc:
        print(f"FAILED: {exc}")
        return 1
    s = out["script"]
    for key in ("process", "setResult", "plot", "build", "send", "send_noslices", "quality_added"):
        m = s[key]
        if m.get("n"):
            print(
                f"  {key:14s} median {m['median_ms']:.3f} ms, p90 {m['p90_ms']:.3f}, "
                f"p99 {m['p99_ms']:.3f} (n={m['n']})"
            )
    print(f"  slices: {s['slice_bytes']} bytes per volume; late volume starts: {s['late_starts']}")
    if out.get("samples"):
        last = out["samples"][-1]
        print(
            f"  page: {last['records']} records, {last['draws']} draws, max draw "
            f"{last['maxDrawMs']:.1f} ms, heap {last['heap_mb']:.1f} MB, nodes {last['nodes']}"
        )
    out["verdicts"] = verdicts(out)
    for name, verdict in out["verdicts"].items():
        print(f"  {verdict}: {name}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
