"""Replaying a run of a BIDS dataset (or of an OpenNeuro dataset) as a scanner would.

Each volume of the run becomes a Siemens mosaic DICOM file (the voxels exactly, as the NIfTI
image a converter makes of the file: dcm2niix's voxel order; axial geometry with the run's
voxel size; the run's TR; acquisition times advancing by TR) written into the scanner folder
at TR pace by :func:`rtcloud.simulate.replay.replay_series`. Any project that reads DICOMs
(the sample, dicomBidsStream) can so run on any public dataset.

Voxel values are written as 16-bit unsigned integers: values below 0 or above 65535 are
clipped and fractions rounded (the number of changed voxels is reported).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from rtcloud.errors import ValidationError

__all__ = ["is_bids_source", "replay_bids"]

logger = logging.getLogger(__name__)

_ACCESSION = re.compile(r"ds\d{6}")


def is_bids_source(source: str | Path) -> bool:
    """A BIDS dataset folder or an OpenNeuro accession number (``ds000102``)."""
    text = str(source)
    return bool(_ACCESSION.fullmatch(text)) or (Path(text) / "dataset_description.json").is_file()


def write_run_as_dicoms(
    run: Any, out_dir: Path, *, scan: int, pattern: str = "001_{SCAN:06d}_{TR:06d}.dcm"
) -> tuple[list[Path], int]:
    """Write every volume of a BidsRun as a mosaic DICOM; (paths, voxels changed)."""
    from rtcloud.imaging.dicom import write_dicom_bytes
    from rtcloud.simulate.synthetic import SeriesSpec, _mosaic, make_volume_dataset

    first = run.getIncremental(0)
    zooms = first.image.header.get_zooms()
    tr_ms = int(round(first.getRepetitionTime() * 1000))
    shape = first.getImageDimensions()[:3]
    voxel = (float(zooms[0]), float(zooms[1]), float(zooms[2]))
    spec = SeriesSpec(shape=(shape[0], shape[1], shape[2]), voxel_mm=voxel, tr_ms=tr_ms)
    uids = {"series_uid": generate_uid(), "study_uid": generate_uid(), "frame_uid": generate_uid()}
    start = dt.datetime.now().replace(microsecond=0)
    protocol = "func_" + "_".join(
        f"{key}-{run.getRunEntities()[name]}"
        for name, key in (("session", "ses"), ("task", "task"), ("run", "run"))
        if run.getRunEntities().get(name) not in (None, "")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, changed = [], 0
    blank = np.zeros(shape, dtype=np.float64)
    rng = np.random.default_rng(0)
    for index, volume in enumerate(run.iter_volumes()):
        rounded = np.clip(np.rint(volume), 0, 65535)
        changed += int(np.count_nonzero(rounded != volume))
        # the simulator's mosaic header and geometry, holding this volume's voxels
        ds = make_volume_dataset(index, spec, base=blank, rng=rng, scan=scan, start=start, **uids)
        ds.PixelData = _mosaic(rounded.astype(np.uint16)).tobytes()
        ds.ProtocolName = ds.SeriesDescription = protocol
        path = out_dir / pattern.format(SCAN=scan, TR=index)
        path.write_bytes(write_dicom_bytes(ds))
        paths.append(path)
    return paths, changed


def replay_bids(
    source: str | Path,
    dest_dir: str | Path,
    *,
    entities: dict[str, Any],
    tr: float | None = None,
    mode: str = "pieces",
    scan: int = 1,
    start_delay: float = 0.0,
    progress: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
    on_volume: Callable[[int, Path, float], None] | None = None,
) -> int:
    """Replay one run of a BIDS dataset folder or OpenNeuro accession into ``dest_dir`` as
    DICOM files at TR pace (the run's TR unless ``tr`` is given); return the volumes written.
    """
    from rtcloud.bids.archive import BidsArchive
    from rtcloud.simulate.replay import replay_series

    text = str(source)
    if _ACCESSION.fullmatch(text):
        from rtcloud.bids.openneuro import OpenNeuroCache

        if not entities.get("subject") or entities.get("run") in (None, ""):
            raise ValidationError(
                "replaying an OpenNeuro dataset needs --subject and --run (and --task where "
                "the dataset has several)"
            )
        text = OpenNeuroCache().downloadData(text, progress=progress, **entities)
    run = BidsArchive(text).getBidsRun(**entities)
    with tempfile.TemporaryDirectory(prefix="rtcloud-replay-") as staging:
        files, changed = write_run_as_dicoms(run, Path(staging), scan=scan)
        if changed:
            logger.warning(
                "%d voxel values were rounded or clipped to fit 16-bit DICOM pixels", changed
            )
        pace = run.getIncremental(0).getRepetitionTime() if tr is None else tr
        return replay_series(
            files, dest_dir, tr=pace, mode=mode, start_delay=start_delay,
            stop_event=stop_event, on_volume=on_volume,
        )  # fmt: skip
