"""Session set-up of the sample project: bring the session's stimulus files to the script.

Creates the project's tmp folders, then copies every file of ``tmp/stimulus_directory`` on
the data side into ``tmp/cloud_directory`` here (RT-Cloud calls this direction "upload").
"""

import argparse
import os
import sys

currPath = os.path.dirname(os.path.realpath(__file__))
rootPath = os.path.dirname(os.path.dirname(currPath))
sys.path.append(rootPath)

from rtCommon.clientInterface import ClientInterface  # noqa: E402
from rtCommon.dataInterface import uploadFilesToCloud  # noqa: E402
from rtCommon.utils import loadConfigFile  # noqa: E402

defaultConfig = os.path.join(currPath, "conf", "sample.toml")
stimulusDir = os.path.join(currPath, "tmp", "stimulus_directory")
cloudDir = os.path.join(currPath, "tmp", "cloud_directory")


def main(argv=None):
    argParser = argparse.ArgumentParser(description="Initialize a sample session")
    argParser.add_argument("--config", "-c", default=defaultConfig, type=str)
    argParser.add_argument("--yesToPrompts", "-y", default=False, action="store_true")
    args, _ = argParser.parse_known_args(argv)
    cfg = loadConfigFile(args.config)

    clientInterface = ClientInterface(yesToPrompts=args.yesToPrompts)
    dataInterface = clientInterface.dataInterface
    os.makedirs(stimulusDir, exist_ok=True)
    os.makedirs(cloudDir, exist_ok=True)
    # A session file the stimulus computer would provide.
    dataInterface.putFile(
        os.path.join(stimulusDir, "session_info.txt"),
        f"subject {cfg.subjectName} day {cfg.subjectDay}\n",
    )
    print(f"allowed file types on the data side: {dataInterface.getAllowedFileTypes()}")
    copied = uploadFilesToCloud(dataInterface, os.path.join(stimulusDir, "*.txt"), cloudDir)
    for name in copied:
        print(f"initialize: copied {name}")
    print(f"initialize: session ready for {cfg.subjectName}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
