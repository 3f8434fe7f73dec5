"""Sample rtcloud experiment: ROI feedback for every volume of a run.

Written the way RT-Cloud experiment scripts are (it imports the ``rtCommon`` names). It asks
for each volume with ``getVolume``, rtcloud's one call for every layout scanners write (a
Siemens mosaic, an enhanced multi-frame file, one file per slice), which returns the volume
as a NIfTI image, as dcm2niix makes it. An RT-Cloud script's ``getImageData`` followed by
``convertDicomImgToNifti`` runs unchanged too, for one file per volume.

For each volume: get it as soon as the scanner has written it, preprocess it
(``rtcloud.preprocess``: motion correction, FD, DVARS, smoothing, the mean of the ROI given
as a mask file, a GLM that removes drift and motion), send the ROI's percent signal change to
the participant and to the web page's plot, and the volume's quality (motion, FD, where its
time went, its slices) to the page's Quality tab. At the end of a run, write the values to a
results file through the data interface.

Run it on its own (no server; -y skips the "continue with local files?" question) with the
Python that has rtcloud installed (``.venv/bin/python`` after ``scripts/bootstrap.py``, or
``python`` once the environment is activated: ``source .venv/bin/activate``, on Windows
``.venv\\Scripts\\activate``)::

    .venv/bin/python projects/sample/sample.py -y --config projects/sample/conf/sample.toml

or press Run on the web page of ``rtcloud serve -p sample``.
"""

import argparse
import datetime
import glob
import os
import re
import sys
import time

currPath = os.path.dirname(os.path.realpath(__file__))
rootPath = os.path.dirname(os.path.dirname(currPath))
sys.path.append(rootPath)  # what RT-Cloud scripts do; harmless with rtcloud installed

try:
    import numpy as np

    from rtcloud.preprocess import Pipeline
    from rtCommon.clientInterface import ClientInterface
    from rtCommon.utils import (
        calcAvgRoundTripTime,
        getTimeToNextTR,
        loadConfigFile,
        stringPartialFormat,
    )
except ImportError as exc:  # started with a Python that does not have rtcloud
    venv = os.path.join(rootPath, ".venv", "Scripts" if os.name == "nt" else "bin", "python")
    sys.exit(
        f"{os.path.basename(__file__)}: {exc} in {sys.executable}. Run it with the Python that "
        f"has rtcloud: {venv} {' '.join(sys.argv)} (or activate that environment first: "
        f"source .venv/bin/activate; on Windows .venv\\Scripts\\activate), or pip install rtcloud"
    )

defaultConfig = os.path.join(currPath, "conf", "sample.toml")


def roiMean(volume, cfg):
    """Mean of the region of interest given by cfg.roiX/roiY/roiZ (voxel index ranges)."""
    x0, x1 = cfg.roiX or [0, volume.shape[0]]
    y0, y1 = cfg.roiY or [0, volume.shape[1]]
    z0, z1 = cfg.roiZ or [0, volume.shape[2]]
    return float(np.mean(volume[x0:x1, y0:y1, z0:z1]))


def timeToNextTr(sidecar, clockSkew):
    """Seconds until the scanner's next TR, from a volume's acquisition time and TR."""
    acquired, tr = sidecar.get("AcquisitionTime"), sidecar.get("RepetitionTime")
    if not acquired or not tr:
        return None
    local = time.localtime()
    now = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec + (time.time() % 1)
    return getTimeToNextTR(datetime.time.fromisoformat(acquired), tr, now, clockSkew)


def projectPath(path):
    """A path from the config: relative ones are relative to this project's folder."""
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.join(currPath, path)


def doRun(cfg, runNum, scanNum, clientInterface):
    dataInterface = clientInterface.dataInterface
    subjInterface = clientInterface.subjInterface
    webInterface = clientInterface.webInterface

    dicomDir = projectPath(cfg.imgDir or "dicomDir")
    pattern = stringPartialFormat(cfg.dicomNamePattern, "SCAN", scanNum)
    numVolumes = int(cfg.numVolumes or 10)
    trInterval = float(cfg.trInterval or 2.0)
    delayMs = float(cfg.onsetTimeDelayMs or 0)

    subjInterface.setMessage(f"Preparing run {runNum} ...")
    # When Run was pressed (the server says so), else now: files older than this are old.
    runStart = float(os.environ.get("RTCLOUD_RUN_STARTED") or time.time())
    warnAboutOldFiles(dataInterface, dicomDir, pattern, scanNum, runStart)
    roundTrip = calcAvgRoundTripTime(dataInterface.ping)
    clockSkew = dataInterface.getClockSkew(time.time(), roundTrip)
    print(
        f"run {runNum} scan {scanNum}: watching {dicomDir} for {pattern} "
        f"(round trip {roundTrip * 1000:.2f} ms, clock skew {clockSkew:+.3f} s)",
        flush=True,
    )
    streamId = dataInterface.initScannerStream(
        dicomDir, pattern, cfg.minExpectedDicomSize or 0, anonymize=True
    )
    webInterface.clearRunPlot(runNum)

    rois = {"roi": projectPath(cfg.roiMask)} if cfg.roiMask else {}
    pipeline = Pipeline(
        fwhm=float(cfg.smoothingFwhm or 0),
        rois=rois,
        fd_threshold=float(cfg.fdThreshold or 0.5),
        tr=trInterval,
    )
    webInterface.clearQuality()
    baseline = []
    values = []
    for tr in range(numVolumes):
        timeout = float(cfg.firstVolumeTimeout or 60) if tr == 0 else trInterval + 10
        image = dataInterface.getVolume(streamId, int(tr), timeout=timeout)
        received = time.time()
        if tr == 0:
            subjInterface.setMessage(f"Run {runNum}")  # replaces "Preparing run ..."
        result = pipeline.process(image)
        for problem in result.setup_problems:  # e.g. a mask in another subject's space
            webInterface.setUserError(f"preprocessing: {problem}")
        mean = result.roi_means.get("roi", float("nan"))
        if np.isfinite(result.activation.get("roi", float("nan"))):
            change = result.activation["roi"]  # drift and motion removed (the pipeline's GLM)
        else:  # no usable mask: the voxel box of the config, against the first volumes
            mean = roiMean(image.get_fdata(), cfg)
            if tr < int(cfg.baselineVolumes or 4):
                baseline.append(mean)
            reference = float(np.mean(baseline))
            change = 100.0 * (mean - reference) / reference if reference else 0.0
        toNextTr = timeToNextTr(image.sidecar, clockSkew)  # None: feedback at once
        onsetMs = delayMs
        if cfg.onsetAtNextTr and toNextTr is not None:
            onsetMs = 1000.0 * toNextTr  # counted from the moment it reaches the stimulus PC
        resultSent = time.time()
        subjInterface.setResult(runNum, int(tr), float(change), onsetMs)
        resultAcked = time.time()
        webInterface.plotDataPoint(runNum, int(tr), float(change))
        timeline = {"received": received, "resultSent": resultSent, "resultAcked": resultAcked}
        webInterface.sendQuality(runNum, int(tr), result.quality(timeline=timeline))
        values.append(change)
        fileName = os.path.join(dicomDir, pattern.format(TR=tr))
        latency = ""
        if os.path.exists(fileName) and "MOSAIC" in image.sidecar.get("ImageType", []):
            # one file per volume, local data: time since the scanner's last byte
            written = os.path.getmtime(fileName)
            latency = f", {1000 * (received - written):.1f} ms after write"
            if written < runStart:
                latency += " (WRITTEN BEFORE THIS RUN STARTED: an old file?)"
        nextTr = f", next TR in {toNextTr:.2f} s" if toNextTr is not None else ""
        moved = f", FD {result.fd:.2f} mm" if np.isfinite(result.fd) else ""
        flags = "".join(f" [{p.kind}]" for p in result.problems)
        print(
            f"run {runNum} TR {tr:3d}: ROI mean {mean:9.2f}  change {change:+6.2f} %"
            f"{latency}{nextTr}{moved}, preprocessing {result.total_ms:.1f} ms{flags}",
            flush=True,
        )

    subjInterface.setMessage("End run")
    responses = subjInterface.getAllResponses()
    print(f"run {runNum}: {len(responses)} responses from the participant", flush=True)
    resultsDir = projectPath(cfg.resultsDir or "results")
    resultsFile = os.path.join(resultsDir, f"{cfg.subjectName}_run{runNum}_values.txt")
    dataInterface.putFile(resultsFile, "\n".join(f"{v:.6f}" for v in values) + "\n")
    print(f"run {runNum}: wrote {resultsFile}", flush=True)
    return values


def warnAboutOldFiles(dataInterface, dicomDir, pattern, scanNum, runStart):
    """Say so when files of this scan from before the run are there: they would be read at
    once as this run's volumes (a run repeated with the same scan number reads old files)."""
    anyVolume = re.sub(r"\{TR[^}]*\}", "*", glob.escape(pattern))
    try:
        found = dataInterface.listFiles(os.path.join(dicomDir, anyVolume))
    except Exception:  # e.g. the folder is not there yet, or not allowed for listing
        return
    # Files this computer sees (local data) count when written before the run started;
    # those on a remote scanner computer when they are there at all.
    old = [f for f in found if not os.path.exists(f) or os.path.getmtime(f) < runStart]
    if old:
        print(
            f"warning: {len(old)} files of scan {scanNum} in {dicomDir} are from before this "
            "run (an earlier run?); they are read at once as this run's volumes. Delete them, "
            "or use another scan number, to wait for the scanner's new files.",
            flush=True,
        )


def main(argv=None):
    argParser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    argParser.add_argument(
        "--config",
        "-c",
        default=defaultConfig,
        type=str,
        help="experiment config file (.json or .toml)",
    )
    argParser.add_argument(
        "--runs", "-r", default="", type=str, help="Comma separated list of run numbers"
    )
    argParser.add_argument(
        "--scans", "-s", default="", type=str, help="Comma separated list of scan numbers"
    )
    argParser.add_argument(
        "--yesToPrompts",
        "-y",
        default=False,
        action="store_true",
        help="use local files without asking when no server runs",
    )
    args = argParser.parse_args(argv)

    cfg = loadConfigFile(args.config)
    if args.runs:
        cfg.runNum = [int(r) for r in args.runs.split(",")]
    if args.scans:
        cfg.scanNum = [int(s) for s in args.scans.split(",")]
    if len(cfg.scanNum) < len(cfg.runNum):
        argParser.error("give a scan number for every run (--scans)")

    clientInterface = ClientInterface(yesToPrompts=args.yesToPrompts)
    for runNum, scanNum in zip(cfg.runNum, cfg.scanNum, strict=False):
        doRun(cfg, runNum, scanNum, clientInterface)
    print("sample: all runs complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
