"""OpenNeuro replay: a public dataset's run streamed to this script as if it were a scan.

Written the way RT-Cloud's example projects are (``rtCommon`` names, ``-c/-r/-y``).
``bidsInterface.initOpenNeuroStream`` downloads only the files the run needs (once: they
are cached) and replays its volumes as BIDS incrementals; the data service does this when
the data are remote. For each volume the script plots the mean of the brain's voxels; with
``-a`` it also writes the run again as a BIDS dataset here.

Run it on its own (no server; needs ``pip install "rtcloud[openneuro]"`` and the network)::

    python projects/openNeuroClient/openNeuroClient.py -y

or press Run on the page of ``rtcloud serve -p openNeuroClient``.
"""

import argparse
import os
import sys
import tempfile
import uuid

import numpy as np

currPath = os.path.dirname(os.path.realpath(__file__))
rootPath = os.path.dirname(os.path.dirname(currPath))
sys.path.append(rootPath)  # what RT-Cloud scripts do; harmless with rtcloud installed

from rtCommon.bidsArchive import BidsArchive  # noqa: E402
from rtCommon.bidsRun import BidsRun  # noqa: E402
from rtCommon.clientInterface import ClientInterface  # noqa: E402
from rtCommon.utils import loadConfigFile  # noqa: E402

defaultConfig = os.path.join(currPath, "conf", "openNeuroClient.toml")


def doRuns(cfg, bidsInterface, subjInterface, webInterface):
    """Replay each configured run of the OpenNeuro dataset."""
    for run in cfg.runNum:
        entities = {"subject": cfg.subjectName, "run": run, "suffix": "bold", "datatype": "func"}
        if cfg.taskName:
            entities["task"] = cfg.taskName
        webInterface.clearRunPlot(run)
        subjInterface.setMessage(f"Replaying {cfg.dsAccessionNumber} run {run}")
        # downloads what the run needs (once), then replays it; the first download of a large
        # run may take minutes: give it time (rpc_timeout is ignored when running locally)
        streamId = bidsInterface.initOpenNeuroStream(
            cfg.dsAccessionNumber, rpc_timeout=float(cfg.downloadTimeout or 1800), **entities
        )
        numVols = bidsInterface.getNumVolumes(streamId)
        print(f"{cfg.dsAccessionNumber} sub-{cfg.subjectName} run {run}: {numVols} volumes")
        bidsRun = BidsRun(**entities) if cfg.writeBidsArchive else None
        for idx in range(numVols):
            step = cfg.demoStep or 0
            bidsIncremental = bidsInterface.getIncremental(streamId, idx, demoStep=step)
            if bidsRun is not None:
                bidsRun.appendIncremental(bidsIncremental)
            imageData = bidsIncremental.getImageData()
            avg_niftiData = float(np.mean(imageData))
            print(f"| average activation value for TR {idx} is {avg_niftiData:f}", flush=True)
            subjInterface.setResult(run, idx, avg_niftiData, 0)
            webInterface.plotDataPoint(run, idx, avg_niftiData)
        bidsInterface.closeStream(streamId)
        if bidsRun is not None:
            archivePath = cfg.bidsArchiveDir or os.path.join(
                tempfile.gettempdir(), "bids_archive_" + uuid.uuid4().hex
            )
            print(f"BIDS run written to {BidsArchive(archivePath).appendBidsRun(bidsRun)}")


def main(argv=None):
    argParser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    argParser.add_argument("--config", "-c", default=defaultConfig, type=str,
                           help="experiment config file (.json or .toml)")
    argParser.add_argument("--runs", "-r", default=None, type=str,
                           help="Comma separated list of run numbers")
    argParser.add_argument("--scans", "-s", default=None, type=str,
                           help="accepted for the web page's Run button; unused")
    argParser.add_argument("--yesToPrompts", "-y", default=False, action="store_true",
                           help="use local files without asking when no server runs")
    argParser.add_argument("--archive", "-a", default=False, action="store_true",
                           help="write the replayed run again as a BIDS dataset")
    args = argParser.parse_args(argv)

    cfg = loadConfigFile(args.config)
    if args.runs is not None:
        cfg.runNum = [int(x) for x in args.runs.split(",")]
    if args.archive:
        cfg.writeBidsArchive = True

    clientInterfaces = ClientInterface(yesToPrompts=args.yesToPrompts)
    doRuns(
        cfg,
        clientInterfaces.bidsInterface,
        clientInterfaces.subjInterface,
        clientInterfaces.webInterface,
    )
    print("openNeuroClient: all runs complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
