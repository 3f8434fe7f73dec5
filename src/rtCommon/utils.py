"""RT-Cloud name for the helpers scripts call through ``rtCommon.utils``."""

from rtcloud.config import loadConfigFile
from rtcloud.imaging.timing import getTimeToNextTR
from rtcloud.matlab import loadMatFile, loadMatFileFromBuffer, parseMatlabStruct
from rtcloud.structdict import StructDict
from rtcloud.utils import (
    DebugLevels,
    calcAvgRoundTripTime,
    copyFileWildcard,
    dateStr30,
    deleteFilesFromList,
    deleteFolder,
    deleteFolderFiles,
    demoDelay,
    dtimeToSeconds,
    fileCount,
    findNewestFile,
    installLoggers,
    md5SumFile,
    npToPy,
    readFile,
    stringPartialFormat,
    trimDictBytes,
    writeFile,
)

__all__ = [
    "DebugLevels",
    "StructDict",
    "calcAvgRoundTripTime",
    "copyFileWildcard",
    "dateStr30",
    "deleteFilesFromList",
    "deleteFolder",
    "deleteFolderFiles",
    "demoDelay",
    "dtimeToSeconds",
    "fileCount",
    "findNewestFile",
    "getTimeToNextTR",
    "installLoggers",
    "loadConfigFile",
    "loadMatFile",
    "loadMatFileFromBuffer",
    "md5SumFile",
    "npToPy",
    "parseMatlabStruct",
    "readFile",
    "stringPartialFormat",
    "trimDictBytes",
    "writeFile",
]
