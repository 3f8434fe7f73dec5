"""The script of ``bench_quality.py``: a real-time preprocessing script that reports quality.

It connects to the benchmark's server like any experiment script (``ClientInterface()``,
the server found through ``RTCLOUD_SERVER_INFO``), makes a moving-head run from the real
series (see ``bench_preprocess.py``) and then, one volume per TR: ``Pipeline.process``,
``subjInterface.setResult``, ``webInterface.plotDataPoint`` and the quality view's own work,
``result.quality(...)`` and ``webInterface.sendQuality``, each timed with
``time.perf_counter``. Prints ``READY``, ``V <n>`` every 50 volumes and ``RESULT <json>``.

    python quality_worker.py VOLUMES TR [SHAPE]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_preprocess import _series  # noqa: E402

from benchlib.stats import summary_ms  # noqa: E402


def main() -> int:
    volumes, tr = int(sys.argv[1]), float(sys.argv[2])
    shape = sys.argv[3] if len(sys.argv) > 3 else "64x64x27"
    from rtcloud.preprocess import Pipeline
    from rtCommon.clientInterface import ClientInterface

    unique = min(volumes, 100)  # the moving-head volumes are cycled beyond this many
    images, _, masks = _series(shape, unique, seed=2)
    ci = ClientInterface()
    if not ci.isUsingProjectServer():
        print("ERROR the script did not reach the server", flush=True)
        return 2
    pipe = Pipeline(fwhm=6.0, rois={"roi1": str(masks[0]), "roi2": str(masks[1])}, tr=tr)
    ci.webInterface.clearQuality()
    times: dict[str, list[float]] = {
        k: [] for k in ("process", "setResult", "plot", "build", "send", "send_noslices")
    }
    late = 0
    print("READY {}", flush=True)
    start = time.perf_counter() + 0.2
    for i in range(volumes):
        due = start + i * tr
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1
        received = time.time()
        t0 = time.perf_counter()
        result = pipe.process(images[i % unique], index=i)
        t1 = time.perf_counter()
        sent = time.time()
        ci.subjInterface.setResult(1, i, float(result.activation.get("roi1", 0.0)), 0)
        acked = time.time()
        t2 = time.perf_counter()
        ci.webInterface.plotDataPoint(1, i, float(result.fd))
        t3 = time.perf_counter()
        record = result.quality(
            timeline={"received": received, "resultSent": sent, "resultAcked": acked}
        )
        t4 = time.perf_counter()
        ci.webInterface.sendQuality(1, i, record)
        t5 = time.perf_counter()
        if i % 10 == 5:  # now and then the same record without its slices, for comparison
            record.pop("slices", None)
            t6 = time.perf_counter()
            ci.webInterface.sendQuality(1, i, record)
            times["send_noslices"].append(time.perf_counter() - t6)
        if i:  # the first volume sets the reference up
            times["process"].append(t1 - t0)
        times["setResult"].append(t2 - t1)
        times["plot"].append(t3 - t2)
        times["build"].append(t4 - t3)
        times["send"].append(t5 - t4)
        if i % 50 == 49:
            print(f"V {i + 1}", flush=True)
    ci.close()  # the records still queued reach the page first
    for path in masks:
        path.unlink(missing_ok=True)
    added = [b + s for b, s in zip(times["build"], times["send"], strict=True)]
    out = {k: summary_ms(v) for k, v in times.items()}
    out["quality_added"] = summary_ms(added)
    out["late_starts"] = late
    out["volumes"] = volumes
    out["slice_bytes"] = sum(
        len(v["grey"]) + len(v["outline"]) for v in result.quality()["slices"]["views"]
    )
    out["median_added_ms"] = statistics.median(added) * 1000
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
