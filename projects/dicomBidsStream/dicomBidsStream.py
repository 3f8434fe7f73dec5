"""BIDS stream from DICOMs: each scanner volume reaches this script as a BIDS incremental.

Written the way RT-Cloud's example projects are (``rtCommon`` names, ``-c/-r/-s/-y``).
``bidsInterface.initDicomBidsStream`` watches the scanner's folder; every volume is
anonymized and converted to NIfTI (as dcm2niix would: RAS, with its BIDS sidecar fields)
where the DICOMs are, in the data service when the data are remote, so only the incremental
leaves the scanner computer. For each volume the script averages a region of interest,
sends the value to the participant and to the web page's plot; at the end of the run it
writes the whole run as a BIDS dataset (which the official validator accepts).

Run it on its own (no server; -y skips the "continue with local files?" question)::

    rtcloud generate /tmp/scanner --volumes 10 --scan 1
    cd projects/dicomBidsStream
    python dicomBidsStream.py -y -c conf/dicomBidsStream.toml

or press Run on the page of ``rtcloud serve -p dicomBidsStream`` (add ``--dataRemote`` and
start ``rtcloud data-service`` on the scanner computer for the remote mode).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

currPath = os.path.dirname(os.path.realpath(__file__))
rootPath = os.path.dirname(os.path.dirname(currPath))
sys.path.append(rootPath)  # what RT-Cloud scripts do; harmless with rtcloud installed

from rtCommon.bidsArchive import BidsArchive  # noqa: E402
from rtCommon.bidsRun import BidsRun  # noqa: E402
from rtCommon.clientInterface import ClientInterface  # noqa: E402
from rtCommon.imageHandling import bidsIncrementalTimeToNextTr  # noqa: E402
from rtCommon.utils import calcAvgRoundTripTime, loadConfigFile, stringPartialFormat  # noqa: E402

defaultConfig = os.path.join(currPath, "conf", "dicomBidsStream.toml")


def projectPath(path):
    """A path from the config: relative ones are relative to this project's folder."""
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.join(currPath, path)


def roiMean(volume, cfg):
    """Mean of the region of interest given by cfg.roiX/roiY/roiZ (voxel index ranges)."""
    x0, x1 = cfg.roiX or [0, volume.shape[0]]
    y0, y1 = cfg.roiY or [0, volume.shape[1]]
    z0, z1 = cfg.roiZ or [0, volume.shape[2]]
    return float(np.mean(volume[x0:x1, y0:y1, z0:z1]))


def doRun(cfg, runNum, scanNum, clientInterface):
    dataInterface = clientInterface.dataInterface
    bidsInterface = clientInterface.bidsInterface
    subjInterface = clientInterface.subjInterface
    webInterface = clientInterface.webInterface

    subjInterface.setMessage("Preparing Run ...")
    # round trip to the computer holding the DICOMs, and how far its clock is ahead of ours
    rttSec = calcAvgRoundTripTime(dataInterface.ping)
    clockSkew = dataInterface.getClockSkew(time.time(), rttSec)

    dicomDir = projectPath(cfg.imgDir or "dicomDir")
    pattern = stringPartialFormat(cfg.dicomNamePattern, "SCAN", scanNum)
    # the BIDS entities of this run; sidecar fields come from the DICOM headers
    entities = {"subject": cfg.subjectName, "task": cfg.taskName, "run": runNum}
    print(f"run {runNum} scan {scanNum}: BIDS stream of {dicomDir}/{pattern}", flush=True)
    streamId = bidsInterface.initDicomBidsStream(
        dicomDir, pattern, cfg.minExpectedDicomSize or 0, anonymize=True, **entities
    )
    webInterface.clearRunPlot(runNum)

    bidsRun = BidsRun(**entities)
    numVolumes = int(cfg.numVolumes or 10)
    for tr in range(numVolumes):
        timeout = float(cfg.firstVolumeTimeout or 60) if tr == 0 else float(cfg.trInterval or 2)
        # the next volume as a BidsIncremental: a NIfTI image with its BIDS metadata
        bidsIncremental = bidsInterface.getIncremental(streamId, timeout=timeout + 5)
        bidsRun.appendIncremental(bidsIncremental)
        value = roiMean(bidsIncremental.getImageData()[..., 0], cfg)
        try:
            secondsToNextTr = bidsIncrementalTimeToNextTr(bidsIncremental, clockSkew)
            print(f"| seconds to the next TR: {secondsToNextTr:.3f}", flush=True)
        except Exception as err:  # replayed data acquired later in the day than "now"
            print(f"| no time to the next TR: {err}", flush=True)
        name = bidsIncremental.getImageFileName()
        print(f"| TR {tr}: ROI mean {value:.2f} ({name})", flush=True)
        subjInterface.setResult(runNum, tr, value, 0)
        webInterface.plotDataPoint(runNum, tr, value)
    bidsInterface.closeStream(streamId)

    # keep the run as a BIDS dataset on this (the analysis) computer
    archivePath = projectPath(cfg.bidsArchiveDir or os.path.join(tempfile.gettempdir(), "bids"))
    imagePath = BidsArchive(archivePath).appendBidsRun(bidsRun)
    print(f"run {runNum}: {bidsRun.numIncrementals()} volumes written to {imagePath}", flush=True)
    subjInterface.setMessage("End Run")


def main(argv=None):
    argParser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    argParser.add_argument("--config", "-c", default=defaultConfig, type=str,
                           help="experiment config file (.json or .toml)")
    argParser.add_argument("--runs", "-r", default="", type=str,
                           help="Comma separated list of run numbers")
    argParser.add_argument("--scans", "-s", default="", type=str,
                           help="Comma separated list of scan numbers")
    argParser.add_argument("--yesToPrompts", "-y", default=False, action="store_true",
                           help="use local files without asking when no server runs")
    args = argParser.parse_args(argv)

    cfg = loadConfigFile(args.config)
    if args.runs:
        cfg.runNum = [int(r) for r in args.runs.split(",")]
    if args.scans:
        cfg.scanNum = [int(s) for s in args.scans.split(",")]

    clientInterface = ClientInterface(yesToPrompts=args.yesToPrompts)
    for runNum, scanNum in zip(cfg.runNum, cfg.scanNum, strict=False):
        doRun(cfg, runNum, scanNum, clientInterface)
    print("dicomBidsStream: all runs complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
