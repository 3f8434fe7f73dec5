"""A pretend scanner for ``rtcloud serve --replay``: each Run replays a scan into a folder.

Without a scanner, pressing Run leaves the script waiting for files that never come. With
``--replay`` the server writes a series into the folder the project watches when the main
script starts, one volume per TR and each file in pieces, as a scanner does. Where and how
come from the experiment config, under the names of RT-Cloud's sample project: ``imgDir``
(the folder; a relative path is relative to the project folder), ``dicomNamePattern`` (file
names with ``{SCAN}`` and ``{TR}``), ``numVolumes`` and ``trInterval``. The series is a
synthetic one made for each run (so its acquisition times are current), or, with
``--replay DIR``, the DICOM files of DIR in name order, renamed to the pattern. Files of the
same scan left in the folder by an earlier run are deleted first: the script then reads this
run's volumes as they arrive, not stale ones at once.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcloud.errors import ConfigError

__all__ = ["START_DELAY", "ReplayPlan", "ScannerSimulator"]

logger = logging.getLogger(__name__)

#: Seconds between the script's start and the first volume of its first scan.
START_DELAY = 1.0


@dataclass(frozen=True)
class ReplayPlan:
    """Where and how the volumes of a run are written."""

    folder: Path
    pattern: str
    volumes: int
    tr: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], project_dir: Path, source: str) -> ReplayPlan:
        """The plan for this config; ConfigError naming the setting that is missing or wrong."""

        def refuse(key: str, what: str) -> ConfigError:
            return ConfigError(
                f"rtcloud serve --replay needs {what} in {source}", path=source, field=key
            )

        folder, pattern = cfg.get("imgDir"), cfg.get("dicomNamePattern")
        volumes, tr = cfg.get("numVolumes", 20), cfg.get("trInterval", 2.0)
        if not isinstance(folder, str) or not folder:
            raise refuse("imgDir", 'the folder the project watches (e.g. imgDir = "dicomDir")')
        example = 'e.g. dicomNamePattern = "001_{SCAN:06d}_{TR:06d}.dcm"'
        if not isinstance(pattern, str) or "{TR" not in pattern:
            raise refuse("dicomNamePattern", f"volume file names with a {{TR}} field ({example})")
        try:
            pattern.format(SCAN=1, TR=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise refuse(
                "dicomNamePattern", f"a pattern with only {{SCAN}} and {{TR}} fields ({exc})"
            ) from None
        if isinstance(volumes, bool) or not isinstance(volumes, int) or volumes < 1:
            raise refuse("numVolumes", "numVolumes: a whole number >= 1")
        if isinstance(tr, bool) or not isinstance(tr, (int, float)) or tr <= 0:
            raise refuse("trInterval", "trInterval: the seconds between volumes, > 0")
        path = Path(folder).expanduser()
        if not path.is_absolute():
            path = project_dir / path
        return cls(path.resolve(), pattern, volumes, float(tr))

    def name(self, scan: int, index: int) -> str:
        """The file name of volume ``index`` of scan ``scan``."""
        return self.pattern.format(SCAN=scan, TR=index)

    def stale_files(self, scan: int) -> list[Path]:
        """Files of ``scan`` already in the folder: the names the replay is about to write."""
        marker = "\x00"
        text = self.pattern
        start = text.index("{TR")
        end = text.index("}", start) + 1
        named = (text[:start] + marker + text[end:]).format(SCAN=scan)
        wanted = "*".join(glob.escape(part) for part in named.split(marker))
        return sorted(p for p in self.folder.glob(wanted) if p.is_file())


class ScannerSimulator:
    """Replays a series into the project's scanner folder while the main script runs.

    Args:
        project_dir: the project's folder (relative ``imgDir`` values start there).
        source: a folder of DICOM files to replay, or None for a synthetic series.
        report: called with one line of text per event (started, volume written, done).
    """

    def __init__(
        self,
        project_dir: Path,
        source: Path | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.source = source
        self._report = report or (lambda text: logger.info("%s", text))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workdir: Path | None = None  # where synthetic series are made (on first use)
        if source is not None and not self._source_files():
            from rtcloud.errors import InvocationError

            raise InvocationError(f"--replay: no .dcm files in {str(source)!r}")

    def _source_files(self) -> list[Path]:
        from rtcloud.simulate.replay import series_files

        assert self.source is not None
        return series_files(self.source)

    def describe(self, plan: ReplayPlan) -> str:
        """One line for the page: what pressing Run does."""
        what = f"the DICOMs of {self.source}" if self.source else "a synthetic scan"
        return (
            f"Simulated scanner (rtcloud serve --replay): pressing Run replays {what} into "
            f"{plan.folder}, {plan.volumes} volumes at one per {plan.tr:g} s."
        )

    def start(self, plan: ReplayPlan, scans: Sequence[int]) -> None:
        """Delete stale files of ``scans``, then replay each scan in turn (in a thread)."""
        self.stop()
        plan.folder.mkdir(parents=True, exist_ok=True)
        for scan in scans:
            stale = plan.stale_files(scan)
            for path in stale:
                path.unlink(missing_ok=True)
            if stale:
                self._report(
                    f"replay: deleted {len(stale)} files of scan {scan} left in {plan.folder} "
                    "by an earlier run"
                )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(plan, list(scans), self._stop),
            name="rtcloud-replay",
            daemon=True,
        )
        self._thread.start()

    def _series(self, plan: ReplayPlan, scan: int, starts: dt.datetime) -> list[Path]:
        if self.source is not None:
            return self._source_files()[: plan.volumes]
        from rtcloud.simulate.synthetic import generate_series

        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="rtcloud-replay-"))
        folder = self._workdir / f"scan{scan}"
        shutil.rmtree(folder, ignore_errors=True)
        return generate_series(
            folder,
            num_volumes=plan.volumes,
            tr_ms=int(round(plan.tr * 1000)),
            pattern=plan.pattern,
            scan=scan,
            start=starts,
        )

    def _run(self, plan: ReplayPlan, scans: list[int], stop: threading.Event) -> None:
        from rtcloud.simulate.replay import replay_series

        delay = START_DELAY
        for scan in scans:
            starts = dt.datetime.now() + dt.timedelta(seconds=delay)
            try:
                files = self._series(plan, scan, starts)
                self._report(
                    f"replay: scan {scan}: {len(files)} volumes into {plan.folder}, "
                    f"one per {plan.tr:g} s"
                )
                count = replay_series(
                    files,
                    plan.folder,
                    tr=plan.tr,
                    start_delay=delay,
                    stop_event=stop,
                    rename=lambda index, _path, scan=scan: plan.name(scan, index),  # type: ignore[misc]
                )
            except Exception as exc:  # reported on the page; the script then times out
                self._report(f"replay: failed: {exc}")
                logger.exception("replay failed")
                return
            if stop.is_set():
                self._report(f"replay: stopped after {count} volumes of scan {scan}")
                return
            self._report(f"replay: scan {scan} done ({count} volumes)")
            delay = plan.tr

    def stop(self, wait: bool = True) -> None:
        """Stop replaying (the volumes written so far stay); ``wait`` for the thread to end."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
