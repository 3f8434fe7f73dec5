"""Session end of the sample project: send the session's results back to the data side.

Lists the result files, then copies the project's results folder here to
``tmp/stimulus_directory/results`` on the data side (RT-Cloud calls this "download").
"""

import argparse
import os
import sys

currPath = os.path.dirname(os.path.realpath(__file__))
rootPath = os.path.dirname(os.path.dirname(currPath))
sys.path.append(rootPath)

from rtCommon.clientInterface import ClientInterface  # noqa: E402
from rtCommon.dataInterface import downloadFolderFromCloud  # noqa: E402
from rtCommon.utils import loadConfigFile  # noqa: E402

defaultConfig = os.path.join(currPath, "conf", "sample.toml")
stimulusDir = os.path.join(currPath, "tmp", "stimulus_directory")


def main(argv=None):
    argParser = argparse.ArgumentParser(description="Finalize a sample session")
    argParser.add_argument("--config", "-c", default=defaultConfig, type=str)
    argParser.add_argument("--yesToPrompts", "-y", default=False, action="store_true")
    args, _ = argParser.parse_known_args(argv)
    cfg = loadConfigFile(args.config)

    clientInterface = ClientInterface(yesToPrompts=args.yesToPrompts)
    dataInterface = clientInterface.dataInterface
    resultsDir = cfg.resultsDir or "results"
    if not os.path.isabs(resultsDir):
        resultsDir = os.path.join(currPath, resultsDir)
    found = dataInterface.listFiles(os.path.join(resultsDir, "*.txt"))
    print(f"finalize: {len(found)} result files")
    # the trailing separator copies the folder's contents (without it, the folder itself)
    copied = downloadFolderFromCloud(
        dataInterface, os.path.join(resultsDir, ""), os.path.join(stimulusDir, "results")
    )
    for name in copied:
        print(f"finalize: copied {name}")
    print(f"finalize: session of {cfg.subjectName} finalized")
    return 0


if __name__ == "__main__":
    sys.exit(main())
