"""The experiment script of a benchmark session (run by ``bench_pipeline.py``, not by hand).

It is an ordinary RT-Cloud-style script: ``ClientInterface(yesToPrompts=True)`` finds the
session's project server (or none, in local mode) and everything goes through the public API.
Usage: ``python worker.py SPEC.json``, where the spec may hold

- ``stream``: ``{"dir", "pattern", "volumes", "timeout", "first_timeout", "feedback"}``:
  ``initScannerStream`` then ``getImageData(stream, i)`` (or, with ``"call": "getVolume"``,
  ``getVolume(stream, i)``) for every volume, printing ``V [i, time.time() when the dataset
  or image was in hand, error or null, pixel bytes]`` at once;
  with ``feedback`` also ``setResult`` and ``plotDataPoint`` of the volume's mean, as a real
  script does;
- ``calls``: ``{"n", "warmup"}``: ``n`` timed ``setResult`` then ``n`` timed ``plotDataPoint``;
- ``files``: ``{"items": [{"mb", "bytes", "src", "dst"}], "repeats"}``: timed ``getFile`` of
  ``src`` and ``putFile`` of those bytes to ``dst``;
- ``bids_stream``: as ``stream``, through ``bidsInterface.initDicomBidsStream`` and
  ``getIncremental`` (each volume arrives as a BidsIncremental; ``V`` gives its voxel bytes).

It prints ``READY {...}`` once the stream is open, ``RESULT {...}`` at the end, and then waits
for a line on stdin so that the benchmark can read its memory before it exits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def emit(kind: str, payload: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def run_stream(ci: Any, stream_id: int, spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    data, subj, web = ci.dataInterface, ci.subjInterface, ci.webInterface
    feedback = bool(spec.get("feedback"))
    received = 0
    errors: list[str] = []
    set_result: list[float] = []
    plot: list[float] = []
    get_volume = spec.get("call") == "getVolume"
    for index in range(int(spec["volumes"])):
        timeout = spec["first_timeout"] if index == 0 else spec["timeout"]
        try:
            if get_volume:
                image = data.getVolume(stream_id, index, timeout=timeout)
                now = time.time()
                pixels = np.asarray(image.dataobj).tobytes()
            else:
                ds = data.getImageData(stream_id, index, timeout=timeout)
                now = time.time()
                pixels = ds.PixelData
        except Exception as exc:  # a lost volume: say which and why, go on with the next
            message = f"{type(exc).__name__}: {exc}"
            if len(errors) < 20:
                errors.append(f"volume {index}: {message}")
            emit("V", [index, None, message[:300], None])
            continue
        received += 1
        emit("V", [index, now, None, len(pixels)])
        if feedback:
            value = float(np.frombuffer(pixels, dtype=np.uint16).mean())
            t = time.perf_counter()
            subj.setResult(1, index, value, 0)
            set_result.append(time.perf_counter() - t)
            t = time.perf_counter()
            web.plotDataPoint(1, index, value)
            plot.append(time.perf_counter() - t)
    return {"received": received, "errors": errors, "setResult": set_result, "plot": plot}


def run_bids_stream(ci: Any, stream_id: int, spec: dict[str, Any]) -> dict[str, Any]:
    received = 0
    errors: list[str] = []
    for index in range(int(spec["volumes"])):
        timeout = spec["first_timeout"] if index == 0 else spec["timeout"]
        try:
            incremental = ci.bidsInterface.getIncremental(stream_id, index, timeout=timeout)
            now = time.time()
        except Exception as exc:  # a lost volume: say which and why, go on with the next
            message = f"{type(exc).__name__}: {exc}"
            if len(errors) < 20:
                errors.append(f"volume {index}: {message}")
            emit("V", [index, None, message[:300], None])
            continue
        received += 1
        emit("V", [index, now, None, int(incremental.getImageData().nbytes)])
    return {"received": received, "errors": errors}


def run_calls(ci: Any, spec: dict[str, Any]) -> dict[str, Any]:
    subj, web = ci.subjInterface, ci.webInterface
    n, warmup = int(spec["n"]), int(spec.get("warmup", 20))
    for i in range(warmup):
        subj.setResult(2, i, 0.5, 0)
        web.plotDataPoint(2, i, 0.5)
    set_result, plot = [], []
    for i in range(n):
        t = time.perf_counter()
        subj.setResult(1, i, 0.5, 0)
        set_result.append(time.perf_counter() - t)
    for i in range(n):
        t = time.perf_counter()
        web.plotDataPoint(1, i, 0.5)
        plot.append(time.perf_counter() - t)
    return {"setResult": set_result, "plotDataPoint": plot, "warmup": warmup}


def run_files(ci: Any, spec: dict[str, Any]) -> dict[str, Any]:
    data = ci.dataInterface
    out: dict[str, Any] = {}
    for item in spec["items"]:
        gets, puts = [], []
        for _ in range(int(spec["repeats"])):
            t = time.perf_counter()
            payload = data.getFile(item["src"])
            gets.append(time.perf_counter() - t)
            if len(payload) != item["bytes"]:
                raise RuntimeError(
                    f"getFile returned {len(payload)} bytes of {item['src']}, "
                    f"expected {item['bytes']}"
                )
            t = time.perf_counter()
            data.putFile(item["dst"], payload)
            puts.append(time.perf_counter() - t)
            del payload
        out[str(item["mb"])] = {"bytes": item["bytes"], "getFile_s": gets, "putFile_s": puts}
    return out


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    from rtCommon.clientInterface import ClientInterface

    ci = ClientInterface(yesToPrompts=True)
    info = {
        "project_server": bool(ci.isUsingProjectServer()),
        "data_remote": bool(ci.isDataRemote()),
        "subject_remote": bool(ci.isSubjectRemote()),
    }
    stream_spec = spec.get("stream")
    stream_id = None
    if stream_spec:
        stream_id = ci.dataInterface.initScannerStream(
            stream_spec["dir"], stream_spec["pattern"], 0, anonymize=True
        )
    bids_spec = spec.get("bids_stream")
    if bids_spec:
        stream_id = ci.bidsInterface.initDicomBidsStream(
            bids_spec["dir"], bids_spec["pattern"], 0, subject="01", task="bench"
        )
    emit("READY", info)
    result: dict[str, Any] = {"info": info}
    if stream_spec:
        result["stream"] = run_stream(ci, stream_id, stream_spec)
    if bids_spec:
        result["bids_stream"] = run_bids_stream(ci, stream_id, bids_spec)
    if spec.get("calls"):
        result["calls"] = run_calls(ci, spec["calls"])
    if spec.get("files"):
        result["files"] = run_files(ci, spec["files"])
    emit("RESULT", result)
    sys.stdin.readline()  # the benchmark reads our memory, then lets us go
    ci.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
