"""RT-Cloud name for the DICOM and NIfTI helpers of :mod:`rtcloud.imaging`."""

from rtcloud.bids.incremental import bidsIncrementalTimeToNextTr
from rtcloud.imaging.anonymize import ATTRIBUTES_TO_ANONYMIZE, anonymize_dicom as anonymizeDicom
from rtcloud.imaging.dicom import (
    read_dicom_bytes as readDicomFromBuffer,
    read_dicom_file as readDicomFromFile,
    write_dicom_bytes as writeDicomToBuffer,
    write_dicom_file,
)
from rtcloud.imaging.nifti import (
    convertDicomFileToNifti,
    convertDicomImgToNifti,
    niftiToMem,
    parseDicomVolume,
    readNifti,
)
from rtcloud.imaging.orientation import getAxesForTransform, getTransform, saveAsNiftiImage
from rtcloud.imaging.retry import readRetryDicomFromDataInterface
from rtcloud.imaging.timing import (
    dicomTimeToNextTr,
    getDicomAcquisitionTime,
    getDicomFileName,
    getDicomRepetitionTime,
)

attributesToAnonymize = list(ATTRIBUTES_TO_ANONYMIZE)


def writeDicomFile(dicomImg, filename):  # type: ignore[no-untyped-def]
    """Write a DICOM dataset to ``filename``."""
    write_dicom_file(dicomImg, filename)


__all__ = [
    "anonymizeDicom",
    "bidsIncrementalTimeToNextTr",
    "attributesToAnonymize",
    "convertDicomFileToNifti",
    "convertDicomImgToNifti",
    "dicomTimeToNextTr",
    "getAxesForTransform",
    "getDicomAcquisitionTime",
    "getDicomFileName",
    "getDicomRepetitionTime",
    "getTransform",
    "niftiToMem",
    "parseDicomVolume",
    "readDicomFromBuffer",
    "readDicomFromFile",
    "readNifti",
    "readRetryDicomFromDataInterface",
    "saveAsNiftiImage",
    "writeDicomFile",
    "writeDicomToBuffer",
]
