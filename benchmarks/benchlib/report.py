"""Targets, the original RT-Cloud's numbers, PASS/FAIL, and the printed tables."""

from __future__ import annotations

from typing import Any

#: The original RT-Cloud, measured on this kind of machine over loopback (issue 4).
ORIGINAL: dict[str, Any] = {
    "a_latency_median_ms": {"pieces": 67.0, "rename": 271.0},
    "b_setResult_median_ms": 0.9,
    "c_plotDataPoint_median_ms": 0.23,
    "d_getFile_MBps": {"10": 14.6, "100": 3.1},
    "d_putFile_MBps": 4.4,
    "rss_mb": {"server": 363.0, "data_service": 221.0, "subject_service": 191.0},
}

#: The targets of issue 4 item 7, as numbers.
TARGETS: dict[str, Any] = {
    "a_median_ms": 5.0,
    "a_p99_ms": 20.0,
    "a_file": "the 457 KB Siemens sample files, remote mode, either write mode",
    "b_median_ms": 0.5,
    "c_median_ms": 0.2,
    "d_MBps_100MB": 300.0,
    "e_lost": 0,
    "e_rss_max_mb": 150.0,
    # "flat": median of the last 100 volumes <= 1.25 x median of the first 100, + 1 ms
    "e_flat_ratio": 1.25,
    "e_flat_slack_ms": 1.0,
    # "not growing": RSS at the end minus after warm-up (10 % into the run) <= 10 MB
    "e_growth_max_mb": 10.0,
}

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"


def _status(ok: bool) -> str:
    return PASS if ok else FAIL


def find_case(results: dict[str, Any], mode: str, data: str, write: str) -> dict[str, Any] | None:
    for case in results.get("latency", []):
        if (case["mode"], case["data"], case["write"]) == (mode, data, write):
            return case
    return None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what, measured, target, original, PASS / FAIL / NOT RUN."""
    rows: list[dict[str, Any]] = []
    t = TARGETS
    for write, label in (
        ("pieces", "written in place in pieces"),
        ("rename", "renamed into place"),
    ):
        case = find_case(results, "remote", "siemens", write)
        row: dict[str, Any] = {
            "id": f"a_{write}",
            "what": f"(a) latency 457 KB, {label}, remote",
            "target": f"median <= {t['a_median_ms']:g} ms, p99 <= {t['a_p99_ms']:g} ms",
            "original": f"median {ORIGINAL['a_latency_median_ms'][write]:g} ms",
        }
        lat = (case or {}).get("latency", {})
        if not case or not lat.get("n"):
            row.update(measured="-", status=NOT_RUN)
        else:
            ok = (
                lat["median_ms"] <= t["a_median_ms"]
                and lat["p99_ms"] <= t["a_p99_ms"]
                and case["lost"] == 0
            )
            row.update(
                measured=f"median {lat['median_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms"
                + (f", {case['lost']} lost" if case["lost"] else ""),
                status=_status(ok),
            )
        rows.append(row)

    calls = results.get("calls", {}).get("remote")
    for key, name, target_key, original_key in (
        ("b", "setResult", "b_median_ms", "b_setResult_median_ms"),
        ("c", "plotDataPoint", "c_median_ms", "c_plotDataPoint_median_ms"),
    ):
        row = {
            "id": key,
            "what": f"({key}) {name} round trip, remote",
            "target": f"median <= {t[target_key]:g} ms",
            "original": f"median {ORIGINAL[original_key]:g} ms",
        }
        s = (calls or {}).get(name)
        if not s or not s.get("n"):
            row.update(measured="-", status=NOT_RUN)
        else:
            row.update(
                measured=f"median {s['median_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms",
                status=_status(s["median_ms"] <= t[target_key]),
            )
        rows.append(row)

    files = results.get("files", {}).get("remote", {}).get("100")
    for op, original in (
        ("getFile", f"{ORIGINAL['d_getFile_MBps']['100']:g} MB/s"),
        ("putFile", f"{ORIGINAL['d_putFile_MBps']:g} MB/s"),
    ):
        row = {
            "id": f"d_{op}",
            "what": f"(d) {op} 100 MB, remote",
            "target": f">= {t['d_MBps_100MB']:g} MB/s",
            "original": original,
        }
        if not files:
            row.update(measured="-", status=NOT_RUN)
        else:
            rate = files[f"{op}_MBps"]
            row.update(measured=f"{rate:.0f} MB/s", status=_status(rate >= t["d_MBps_100MB"]))
        rows.append(row)

    sus = results.get("sustained")
    ran = bool(sus and sus.get("volumes_received") is not None)
    size = f"{sus['volumes']} volumes at TR {sus['tr_s']:g} s" if ran else "-"
    row = {
        "id": "e_lost",
        "what": f"(e) sustained run ({size}): volumes lost",
        "target": "0",
        "original": "-",
    }
    if ran:
        row.update(measured=str(sus["lost"]), status=_status(sus["lost"] == 0))
    else:
        row.update(measured="-", status=NOT_RUN)
    rows.append(row)

    row = {
        "id": "e_flat",
        "what": f"(e) latency flat: median first vs last {(sus or {}).get('first_last_n', 100)}",
        "target": f"last <= {t['e_flat_ratio']:g} x first + {t['e_flat_slack_ms']:g} ms",
        "original": "-",
    }
    first, last = (sus or {}).get("first_median_ms"), (sus or {}).get("last_median_ms")
    if ran and first is not None and last is not None:
        ok = last <= t["e_flat_ratio"] * first + t["e_flat_slack_ms"]
        row.update(measured=f"{first:.2f} -> {last:.2f} ms", status=_status(ok))
    else:
        row.update(measured="-", status=NOT_RUN)
    rows.append(row)

    rss = (sus or {}).get("rss", {})
    peaks = {name: _peak(r) for name, r in rss.items()}
    row = {
        "id": "e_rss",
        "what": "(e) RSS of every process (peak)",
        "target": f"< {t['e_rss_max_mb']:g} MB each",
        "original": ", ".join(f"{k} {v:g}" for k, v in ORIGINAL["rss_mb"].items()),
    }
    if ran and peaks and all(v is not None for v in peaks.values()):
        worst = max(peaks, key=lambda k: peaks[k] or 0.0)
        row.update(
            measured=f"max {peaks[worst]:.0f} MB ({worst})",
            status=_status(all((v or 0) < t["e_rss_max_mb"] for v in peaks.values())),
        )
    else:
        row.update(measured="-" if not ran else "no RSS on this OS", status=NOT_RUN)
    rows.append(row)

    row = {
        "id": "e_growth",
        "what": "(e) RSS not growing: end minus after warm-up",
        "target": f"<= {t['e_growth_max_mb']:g} MB each",
        "original": "-",
    }
    growth = {name: r.get("growth_mb") for name, r in rss.items()}
    if ran and growth and all(v is not None for v in growth.values()):
        worst = max(growth, key=lambda k: growth[k] or 0.0)
        row.update(
            measured=f"max {growth[worst]:+.1f} MB ({worst})",
            status=_status(all((v or 0) <= t["e_growth_max_mb"] for v in growth.values())),
        )
    else:
        row.update(measured="-" if not ran else "no RSS on this OS", status=NOT_RUN)
    rows.append(row)
    return rows


def anomalies(results: dict[str, Any]) -> list[str]:
    """Lost, incomplete or late volumes, server warnings, processes that did not stop cleanly."""
    notes: list[str] = []
    parts: list[tuple[str, dict[str, Any]]] = [
        (f"(a) {c['mode']} {c['data']} {c['write']}", c) for c in results.get("latency", [])
    ]
    for mode, sess in results.get("calls_files_sessions", {}).items():
        parts.append((f"(b)-(d) {mode}", sess))
    if results.get("sustained") and results["sustained"].get("volumes_received") is not None:
        parts.append(("(e) sustained", results["sustained"]))
    states = {
        (p["code"].get("git_commit"), p["code"].get("src_diff_sha256"))
        for _, p in parts
        if p.get("code")
    }
    if len(states) > 1:
        listed = ", ".join(f"{c}+{d}" if d else str(c) for c, d in sorted(states, key=str))
        notes.append(f"the code changed during the run (commit+src diff): {listed}")
    busy: list[str] = []
    for name, part in parts:
        if part.get("lost"):
            notes.append(f"{name}: {part['lost']} volumes lost: {part.get('errors', [])[:3]}")
        if part.get("incomplete"):
            notes.append(f"{name}: {part['incomplete']} volumes with too few pixel bytes")
        if part.get("late"):
            notes.append(f"{name}: {part['late']} volumes later than one TR")
        for line in part.get("server_warnings", [])[:5]:
            notes.append(f"{name}: server logged: {line}")
        others = (part.get("cpu") or {}).get("others_cores")
        if others is not None and others > 0.25:
            busy.append(f"{name} {others:.2f}")
        for proc, ending in part.get("process_endings", {}).items():
            if ending not in ("exit 0", "SIGINT -> 0"):
                notes.append(f"{name}: {proc} ended with {ending}")
    if busy:
        notes.append(
            "other processes on this machine competed for the CPU (average cores they used; "
            "numbers measured meanwhile may be inflated): " + ", ".join(busy)
        )
    return notes


def _peak(rss: dict[str, Any]) -> float | None:
    """A process's peak: VmHWM when known (catches peaks between samples), else the samples'."""
    values = [v for v in (rss.get("hwm_mb"), rss.get("peak_mb")) if v is not None]
    return max(values) if values else None


# ---------------------------------------------------------------------- printing


def _table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _rss_cell(rss: dict[str, Any]) -> str:
    names = {
        "server": "srv",
        "data_service": "data",
        "subject_service": "subj",
        "script": "script",
    }
    parts = [f"{names.get(k, k)} {_fmt(_peak(v), 0)}" for k, v in rss.items()]
    return ", ".join(parts) if parts else "-"


def format_report(results: dict[str, Any]) -> str:
    out: list[str] = []
    meta = results.get("meta", {})
    out.append(
        f"rtcloud pipeline benchmark - {meta.get('date', '?')} - commit "
        f"{meta.get('git_commit', '?')} - {meta.get('cpus', '?')} cores - "
        f"{meta.get('platform', '?')}"
    )
    if meta.get("src_uncommitted_files"):
        out.append(
            f"note: src/ had {meta['src_uncommitted_files']} uncommitted files "
            f"(diff {meta.get('src_diff_sha256')}) on top of that commit"
        )
    cpu = meta.get("cpu") or {}
    out.append(
        f"load average at start {meta.get('load_average_at_start')}, at end "
        f"{meta.get('load_average_at_end')}; cores used on average by this benchmark "
        f"{cpu.get('ours_cores')}, by other processes {cpu.get('others_cores')}"
    )
    for message in results.get("skipped", []):
        out.append(f"note: {message}")

    cases = results.get("latency", [])
    if cases:
        out.append("")
        out.append("(a) file complete -> pydicom dataset in the script (getImageData), ms")
        rows = []
        for c in cases:
            lat = c.get("latency", {})
            rows.append(
                [
                    c["mode"],
                    c["data"],
                    c["write"],
                    f"{c['file_bytes'] / 1000:.0f} KB",
                    str(c.get("received", 0)),
                    str(c.get("lost", "-")),
                    _fmt(lat.get("median_ms")),
                    _fmt(lat.get("p90_ms")),
                    _fmt(lat.get("p99_ms")),
                    _fmt(lat.get("max_ms")),
                    _rss_cell(c.get("rss", {})),
                ]
            )
        headers = ["mode", "data", "write", "size", "got", "lost", "median", "p90", "p99", "max"]
        out.append(_table([*headers, "peak RSS MB"], rows, right=set(range(3, 10))))

    calls = results.get("calls", {})
    if calls:
        out.append("")
        out.append("(b) setResult and (c) plotDataPoint round trips, ms")
        rows = []
        for mode, c in calls.items():
            for name in ("setResult", "plotDataPoint"):
                s = c.get(name, {})
                rows.append(
                    [
                        mode,
                        name,
                        str(s.get("n", 0)),
                        _fmt(s.get("median_ms"), 3),
                        _fmt(s.get("p90_ms"), 3),
                        _fmt(s.get("p99_ms"), 3),
                        _fmt(s.get("max_ms"), 3),
                    ]
                )
        headers = ["mode", "call", "n", "median", "p90", "p99", "max"]
        out.append(_table(headers, rows, right={2, 3, 4, 5, 6}))

    files = results.get("files", {})
    if files:
        out.append("")
        out.append("(d) getFile / putFile throughput, MB/s (10**6 bytes/s), median of repeats")
        rows = []
        for mode, sizes in files.items():
            for size, f in sizes.items():
                rows.append(
                    [
                        mode,
                        f"{size} MB",
                        str(len(f.get("getFile_MBps_all", []))),
                        _fmt(f.get("getFile_MBps"), 0),
                        _fmt(f.get("putFile_MBps"), 0),
                    ]
                )
        rss = results.get("rss", {})
        out.append(
            _table(["mode", "size", "repeats", "getFile", "putFile"], rows, right={2, 3, 4})
        )
        for name, r in rss.items():
            out.append(f"  peak RSS MB of the {name} session: {_rss_cell(r)}")

    sus = results.get("sustained")
    if sus:
        out.append("")
        out.append(
            f"(e) sustained: {sus.get('volumes')} volumes at TR {sus.get('tr_s')} s, remote, "
            f"{sus.get('data')} ({sus.get('file_bytes', 0) / 1000:.0f} KB), {sus.get('write')}"
        )
        if sus.get("volumes_received") is not None:
            lat = sus.get("latency", {})
            out.append(
                f"  received {sus['volumes_received']}, lost {sus['lost']}, "
                f"late (> TR) {sus.get('late', 0)}; latency median {_fmt(lat.get('median_ms'))}"
                f" p99 {_fmt(lat.get('p99_ms'))} max {_fmt(lat.get('max_ms'))} ms; first "
                f"{sus.get('first_last_n')} median {_fmt(sus.get('first_median_ms'))} ms, last "
                f"{sus.get('first_last_n')} median {_fmt(sus.get('last_median_ms'))} ms"
            )
            rows = []
            for name, r in sus.get("rss", {}).items():
                rows.append(
                    [
                        name,
                        _fmt(r.get("start_mb"), 1),
                        _fmt(r.get("after_warmup_mb"), 1),
                        _fmt(r.get("end_mb"), 1),
                        _fmt(r.get("peak_mb"), 1),
                        _fmt(r.get("hwm_mb"), 1),
                        "-" if r.get("growth_mb") is None else f"{r['growth_mb']:+.1f}",
                        "-" if r.get("slope_mb_per_h") is None else f"{r['slope_mb_per_h']:+.1f}",
                        str(r.get("samples", 0)),
                    ]
                )
            headers = ["RSS MB", "start", "warm", "end", "peak", "VmHWM", "growth", "MB/h", "n"]
            out.append(_table(headers, rows, right=set(range(1, 9))))

    notes = anomalies(results)
    if notes:
        out.append("")
        out.append("Anomalies (the system under test did something unexpected):")
        out.extend(f"  - {n}" for n in notes)

    for err in results.get("errors", []):
        out.append("")
        out.append(f"ERROR in {err['part']}:\n{err['message']}")

    targets = results.get("targets", [])
    if targets:
        out.append("")
        out.append("Targets (issue 4 item 7)")
        rows = [
            [r["status"], r["what"], r["measured"], r["target"], r["original"]] for r in targets
        ]
        out.append(_table(["result", "what", "measured", "target", "original RT-Cloud"], rows))
    return "\n".join(out)
