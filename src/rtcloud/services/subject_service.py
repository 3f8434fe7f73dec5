"""``rtcloud subject-service``: the stimulus-side process that serves SubjectInterface.

Every result the experiment script sends is queued for presentation software and written to
the output folder (``-o``) as files that MATLAB or PsychoPy can poll (see
:mod:`rtcloud.services.result_files`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

from rtcloud.interfaces.subject import KEEP_RESULTS, SubjectInterface
from rtcloud.services.result_files import BackgroundWriter, ResultFileWriter
from rtcloud.services.runner import add_connection_arguments, run_service

__all__ = ["add_parser", "build_interfaces"]


def build_interfaces(out_dir: Path) -> dict[str, object]:
    writer = BackgroundWriter(ResultFileWriter(out_dir))
    # The files are this process's output; nothing here dequeues the results, so keep few.
    subject = SubjectInterface(on_result=writer.submit, max_queued=KEEP_RESULTS)
    return {"SubjectInterface": subject}


def _run(args: argparse.Namespace) -> int:
    # its output folder names it: two services writing to two folders are two feedback peers
    # (each gets every result), one restarted on the same folder is the same peer again
    folder = os.fspath(Path(args.outputDir).resolve())
    instance = hashlib.sha256(folder.encode("utf-8")).hexdigest()[:16]
    return run_service(args, "subject", build_interfaces(args.outputDir), instance)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "subject-service",
        help="receive feedback results on the stimulus computer",
        description="Run on the stimulus computer: dial out to the project server and write "
        "every result the experiment script sends (setResult, setResultDict, setMessage) as "
        "files that MATLAB, Psychtoolbox or PsychoPy can poll (see docs/feedback-files.md).",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "-o",
        "--outputDir",
        type=Path,
        default=Path("rtcloud-output"),
        help="folder for result files",
    )
    parser.set_defaults(func=_run)
