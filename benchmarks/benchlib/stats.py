"""Summaries of timings and memory samples (no third-party dependencies)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) interpolating linearly between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """n, min, median, p90, p99, max and mean, in milliseconds, of durations in seconds."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "min_ms": min(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
    }


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rss_summary(
    samples: Sequence[tuple[float, float]],
    window: tuple[float, float] | None = None,
    hwm_mb: float | None = None,
) -> dict[str, Any]:
    """Start, end and peak of ``(time, MB)`` samples, optionally within a time window.

    ``growth_mb`` is the end minus the value after warm-up (the first sample at or after 10 %
    of the window), and ``slope_mb_per_h`` the least-squares trend over that same part: the
    two figures to judge whether memory keeps growing.
    """
    if window is not None:
        inside = [s for s in samples if window[0] <= s[0] <= window[1] + 0.5]
        samples = inside or list(samples)
    if not samples:
        return {"samples": 0, "start_mb": None, "end_mb": None, "peak_mb": None, "hwm_mb": hwm_mb}
    t0, t1 = samples[0][0], samples[-1][0]
    warm = [s for s in samples if s[0] >= t0 + 0.1 * (t1 - t0)] or list(samples)
    slope = None  # a trend over less than a minute says nothing
    if len(warm) >= 3 and warm[-1][0] - warm[0][0] >= 60:
        mt = statistics.fmean(t for t, _ in warm)
        mv = statistics.fmean(v for _, v in warm)
        var = sum((t - mt) ** 2 for t, _ in warm)
        slope = sum((t - mt) * (v - mv) for t, v in warm) / var * 3600 if var else 0.0
    return {
        "samples": len(samples),
        "start_mb": samples[0][1],
        "after_warmup_mb": warm[0][1],
        "end_mb": samples[-1][1],
        "peak_mb": max(v for _, v in samples),
        "hwm_mb": hwm_mb,
        "growth_mb": samples[-1][1] - warm[0][1],
        "slope_mb_per_h": slope,
    }
