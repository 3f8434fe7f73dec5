"""``rtcloud generate`` and ``rtcloud replay``: the synthetic scanner on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_generate_parser", "add_replay_parser"]


def _generate(args: argparse.Namespace) -> int:
    from rtcloud.simulate.synthetic import generate_series

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    if len(shape) != 3:
        raise SystemExit("--shape must look like 64x64x30")
    paths = generate_series(
        args.out_dir,
        num_volumes=args.volumes,
        shape=shape,
        tr_ms=int(args.tr * 1000),
        pattern=args.pattern,
        scan=args.scan,
        seed=args.seed,
        layout=args.layout,
    )
    what = "slice files" if args.layout.endswith("slices") else f"{args.layout} volumes"
    print(f"wrote {len(paths)} {what} to {args.out_dir} ({paths[0].stat().st_size} bytes each)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rtcloud.simulate.bids_replay import is_bids_source, replay_bids
    from rtcloud.simulate.replay import files_per_volume, replay_series, series_files

    per = 1

    def report(index: int, path: Path, finished: float) -> None:
        if per == 1:
            print(f"volume {index}: {path.name}", flush=True)
        elif index % per == per - 1:
            print(f"volume {index // per}: {per} slices, last {path.name}", flush=True)

    if is_bids_source(args.source):
        entities = {
            k: v
            for k, v in (
                ("subject", args.subject),
                ("session", args.session),
                ("task", args.task),
                ("run", args.run),
            )
            if v is not None
        }
        count = replay_bids(
            args.source, args.dest, entities=entities, tr=args.tr, mode=args.mode,
            scan=args.scan, start_delay=args.delay, on_volume=report,
        )  # fmt: skip
        print(f"replayed {count} volumes into {args.dest}")
        return 0

    files = series_files(Path(args.source))
    per = args.files_per_volume or (files_per_volume(files[0], files) if files else 1)
    count = replay_series(
        Path(args.source),
        args.dest,
        tr=2.0 if args.tr is None else args.tr,
        mode=args.mode,
        start_delay=args.delay,
        on_volume=report,
        files_per_volume=per,
    )
    if per == 1:
        print(f"replayed {count} volumes into {args.dest}")
    else:
        print(f"replayed {count} files ({count // per} volumes) into {args.dest}")
    return 0


def add_generate_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "generate",
        help="write a synthetic scanner series",
        description="Write a synthetic fMRI series as DICOM files (a block design with an "
        "active region) in the layout a scanner writes (--layout), to try a project without "
        "a scanner. Replay it into the folder a project watches with 'rtcloud replay'.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the series into")
    parser.add_argument("--volumes", type=int, default=20, help="number of volumes")
    parser.add_argument("--shape", default="64x64x30", help="voxels, e.g. 64x64x30 or 104x90x72")
    parser.add_argument(
        "--tr", type=float, default=2.0, help="repetition time in seconds (written in the files)"
    )
    parser.add_argument(
        "--pattern",
        default="001_{SCAN:06d}_{TR:06d}.dcm",
        help="file names; {SCAN} is the scan number, {TR} the volume number (from 0)",
    )
    parser.add_argument("--scan", type=int, default=1, help="scan number in the file names")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated noise")
    parser.add_argument(
        "--layout",
        choices=["mosaic", "enhanced", "slices", "enhanced-slices"],
        default="mosaic",
        help="mosaic: one Siemens mosaic file per volume (VB/VE); enhanced: one Enhanced MR "
        "multi-frame file per volume (Siemens XA, Philips); slices: one file per slice "
        "(Siemens XA interoperability, GE, Philips); enhanced-slices: one Enhanced MR file "
        "of one frame per slice (Siemens XA)",
    )
    parser.set_defaults(func=_generate)


def add_replay_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="replay a folder of DICOMs, a BIDS dataset's run or an OpenNeuro run at TR pace",
        description="Copy a series, in name order, into the folder a project watches, one "
        "volume per TR, the way a scanner writes it: a scanner for trying a project. A BIDS "
        "dataset's run (or an OpenNeuro run, downloaded once) is written as Siemens mosaic "
        "DICOMs, so any project can run on public data.",
    )
    parser.add_argument(
        "source",
        help="folder holding a DICOM series, a BIDS dataset folder, or an OpenNeuro accession "
        "number (ds000102)",
    )
    parser.add_argument("dest", type=Path, help="the scanner folder to write into")
    parser.add_argument(
        "--tr", type=float, default=None, help="seconds between volumes (default 2; BIDS: its TR)"
    )
    parser.add_argument(
        "--mode",
        choices=["pieces", "rename", "copy"],
        default="pieces",
        help="pieces: written in chunks under the final name (as a scanner writing to a "
        "share); rename: written under a temporary name, then renamed; copy: in one go",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the first volume")
    bids = parser.add_argument_group("BIDS and OpenNeuro sources: which run")
    bids.add_argument("--subject", help="subject label, e.g. 01")
    bids.add_argument("--session", help="session label")
    bids.add_argument("--task", help="task label")
    bids.add_argument("--run", type=int, help="run number")
    bids.add_argument("--scan", type=int, default=1, help="scan number in the DICOM file names")
    parser.add_argument(
        "--files-per-volume",
        type=int,
        default=0,
        help="files that make one volume (default: from the first file's header: its "
        "ImagesInAcquisition for a series written one file per slice, else 1)",
    )
    parser.set_defaults(func=_replay)
