"""Helpers of ``benchmarks/bench_pipeline.py``: processes, the script's role, statistics, report.

``processes`` starts and stops the real processes of one benchmark session and samples their
memory; ``worker`` is the experiment script run in each session; ``stats`` turns raw timings
into medians and percentiles; ``report`` holds the targets and the original's numbers, judges
PASS/FAIL and prints the tables.
"""
