"""BidsIncremental: one or more fMRI volumes with everything BIDS needs to file them.

An incremental holds a 4-D NIfTI image (a single volume has a time axis of length 1; RAS
affine, voxels as dcm2niix orders them when it comes from DICOM), its BIDS entities and
sidecar metadata in one dictionary (as RT-Cloud's did), and the dataset's description,
README and events table. From those it knows the names and paths its files would have in a
BIDS dataset, its repetition and acquisition time, and it can write itself as a dataset.

It crosses processes *by value* (:meth:`BidsIncremental.to_wire`, :meth:`from_wire`): the
NIfTI file's bytes and plain metadata, never a pickle of the object; ``pickle`` itself works
locally through the same form.

Pure module: no threads, sockets, clocks or event loops; pandas is imported only when an
events table is used.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import nibabel as nib
import numpy as np

from rtcloud.bids.common import (
    DATASET_DESC_REQ_FIELDS,
    DEFAULT_DATASET_DESC,
    DEFAULT_README,
    BidsFileExtension,
    adjustTimeUnits,
    bids_data_dir,
    bids_file_name,
    correct3DHeaderTo4D,
    dumps_sidecar,
    empty_events,
    events_equal,
    events_from_tsv,
    events_to_tsv,
    filterEntities,
    getNiftiData,
    isEntity,
    metadataFromProtocolName,
    non_entities,
)
from rtcloud.errors import MissingMetadataError, ProtocolError, StateError, ValidationError

__all__ = ["BidsIncremental", "bidsIncrementalTimeToNextTr"]

_IMAGE_TYPES = (nib.Nifti1Image, nib.Nifti2Image)


def _as_nifti(image: Any) -> nib.Nifti1Image | nib.Nifti2Image:
    """A NIfTI image (in memory) from a NIfTI image or a pybids BIDSImageFile."""
    if isinstance(image, _IMAGE_TYPES):
        return image
    if type(image).__name__ == "BIDSImageFile" and hasattr(image, "get_image"):
        loaded = image.get_image()
        if isinstance(loaded, _IMAGE_TYPES):
            return loaded
    raise TypeError(
        "Image must be one of [nib.Nifti1Image, nib.Nifti2Image, BIDSImageFile] "
        f"(got {type(image)})"
    )


def _four_d(image: nib.Nifti1Image | nib.Nifti2Image, tr: float) -> nib.Nifti1Image:
    """The image as 4-D data held in memory, its header saying TR (seconds) on the 4th axis."""
    data = getNiftiData(image)
    shape = data.shape
    if data.ndim < 3:
        raise ValueError(f"Image must have at least 3 dimensions (got shape {shape})")
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 4:
        raise ValueError(f"Image must have at most 4 dimensions of size > 1 (got {shape})")
    if data.shape[2] <= 1 and all(n <= 1 for n in data.shape[3:]):
        raise ValueError(
            "Image's 3rd (and any higher) dimensions are <= 1, which means it is a 2D image; "
            f"images must have at least 3 dimensions (got shape {shape})"
        )
    if data.ndim == 3:
        data = data[..., np.newaxis]
    cls = type(image)
    header = image.header.copy()
    out = cls(data, image.affine, header)
    out.header.set_data_shape(data.shape)
    correct3DHeaderTo4D(out, tr)
    return out


class BidsIncremental:
    """Volumes of one fMRI run as a NIfTI image plus BIDS metadata.

    Args:
        image: a ``nibabel`` Nifti1Image or Nifti2Image (3-D or 4-D), or a pybids
            ``BIDSImageFile``. A 3-D image becomes 4-D with one volume.
        imageMetadata: BIDS entities and sidecar fields. ``subject``, ``task``, ``suffix``,
            ``datatype`` and ``RepetitionTime`` are required; entities found in a
            ``ProtocolName`` fill in what is not given. Times in milliseconds are turned
            into seconds.
        datasetDescription: the dataset's ``dataset_description.json`` (needs ``Name`` and
            ``BIDSVersion``); a default one when None.

    Raises:
        TypeError: ``image`` is not an image.
        ValueError: the image has fewer than 3 dimensions, or a time is out of range.
        MissingMetadataError: a required field is missing.
        NotImplementedError: ``datatype`` is not ``func``.
    """

    REQUIRED_IMAGE_METADATA = ["subject", "task", "suffix", "datatype", "RepetitionTime"]

    def __init__(
        self,
        image: Any,
        imageMetadata: Mapping[str, Any],
        datasetDescription: Mapping[str, Any] | None = None,
    ) -> None:
        nifti = _as_nifti(image)
        if not isinstance(imageMetadata, Mapping):
            raise TypeError(f"imageMetadata must be a dict, got {type(imageMetadata).__name__}")
        metadata = {**metadataFromProtocolName(imageMetadata.get("ProtocolName")), **imageMetadata}
        missing = self.findMissingImageMetadata(metadata)
        if missing:
            raise MissingMetadataError(
                f"Image metadata missing required fields: {missing}; give them in "
                "imageMetadata (BidsIncremental.createImageMetadataDict makes one)"
            )
        adjustTimeUnits(metadata)
        if metadata["datatype"] != "func":
            raise NotImplementedError(
                "BIDS Incremental for BIDS datatypes other than 'func' is not yet implemented "
                f"(got '{metadata['datatype']}')"
            )
        metadata["TaskName"] = metadata["task"]
        for key in ("RepetitionTime", "EchoTime"):
            if metadata.get(key) is not None:
                metadata[key] = float(metadata[key])
        description = dict(
            DEFAULT_DATASET_DESC if datasetDescription is None else datasetDescription
        )
        missing_desc = [f for f in DATASET_DESC_REQ_FIELDS if f not in description]
        if missing_desc:
            raise MissingMetadataError(
                f"Dataset description missing required fields: {missing_desc}"
            )
        self.image: nib.Nifti1Image = _four_d(nifti, metadata["RepetitionTime"])
        self._imgMetadata: dict[str, Any] = metadata
        self.datasetDescription: dict[str, Any] = description
        self.readme: str = DEFAULT_README
        self._events: Any = None  # an empty table, made when first asked for
        self.version = 1

    # ------------------------------------------------------------ construction helpers

    @staticmethod
    def createImageMetadataDict(
        subject: str, task: str, suffix: str, datatype: str, repetitionTime: float
    ) -> dict[str, Any]:
        """The smallest valid ``imageMetadata``."""
        return {
            "subject": subject,
            "task": task,
            "suffix": suffix,
            "datatype": datatype,
            "RepetitionTime": repetitionTime,
        }

    @classmethod
    def findMissingImageMetadata(cls, imageMeta: Mapping[str, Any]) -> list[str]:
        """The required fields missing (or None) in ``imageMeta``."""
        return [f for f in cls.REQUIRED_IMAGE_METADATA if imageMeta.get(f) is None]

    @classmethod
    def isCompleteImageMetadata(cls, imageMeta: Mapping[str, Any]) -> bool:
        return not cls.findMissingImageMetadata(imageMeta)

    # ------------------------------------------------------------ events

    @property
    def events(self) -> Any:
        """The events table (a pandas DataFrame; onset and duration columns at least)."""
        if self._events is None:
            self._events = empty_events()
        return self._events

    @events.setter
    def events(self, value: Any) -> None:
        self._events = value

    # ------------------------------------------------------------ comparison and text

    def __str__(self) -> str:
        return (
            f"Image shape: {self.getImageDimensions()}; "
            f"Metadata Key Count: {len(self._imgMetadata)}; "
            f"BIDS-I Version: {self.version}"
        )

    def __repr__(self) -> str:
        entities = ", ".join(f"{k}={v!r}" for k, v in self.getEntities().items())
        return f"<BidsIncremental {self.getImageDimensions()} {entities}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BidsIncremental):
            return NotImplemented
        a, b = self.image, other.image
        if a.shape != b.shape or not np.allclose(a.affine, b.affine, rtol=0, atol=1e-5):
            return False
        if not np.allclose(a.header.get_zooms(), b.header.get_zooms(), rtol=0, atol=1e-6):
            return False
        if a.get_data_dtype() != b.get_data_dtype():
            return False
        if self._imgMetadata != other._imgMetadata:
            return False
        if self.datasetDescription != other.datasetDescription or self.readme != other.readme:
            return False
        if not np.array_equal(self.getImageData(), other.getImageData()):
            return False
        if self._events is None and other._events is None:
            return True
        return events_equal(self.events, other.events)

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------ metadata

    def _check_name(self, field: Any, strict: bool) -> None:
        if not isinstance(field, str) or not field:
            raise ValueError(f"metadata field name must be a non-empty string, got {field!r}")
        if strict and not isEntity(field):
            raise ValueError(f"{field!r} is not a BIDS entity (strict=True)")

    def getMetadataField(self, field: str, strict: bool = False) -> Any:
        """A metadata value; KeyError naming the field when it is not there.

        With ``strict``, only BIDS entities may be asked for (ValueError otherwise).
        """
        self._check_name(field, strict)
        try:
            return self._imgMetadata[field]
        except KeyError:
            raise KeyError(
                f"no metadata field {field!r} in this BidsIncremental "
                f"(it has {sorted(self._imgMetadata)})"
            ) from None

    def setMetadataField(self, field: str, value: Any, strict: bool = False) -> None:
        """Set a metadata value (only BIDS entities with ``strict``)."""
        self._check_name(field, strict)
        if field in ("RepetitionTime", "EchoTime"):
            probe = {field: value}
            adjustTimeUnits(probe)
            value = float(probe[field])
        self._imgMetadata[field] = value
        if field == "task":
            self._imgMetadata["TaskName"] = value
        if field == "RepetitionTime":
            correct3DHeaderTo4D(self.image, value)

    def removeMetadataField(self, field: str, strict: bool = False) -> None:
        """Remove a metadata value; a required one cannot be removed (RuntimeError)."""
        self._check_name(field, strict)
        if field in self.REQUIRED_IMAGE_METADATA:
            raise RuntimeError(f"{field!r} is required and cannot be removed")
        self._imgMetadata.pop(field, None)

    def getImageMetadata(self) -> dict[str, Any]:
        """A copy of all metadata: entities and sidecar fields."""
        return dict(self._imgMetadata)

    def getSuffix(self) -> str:
        return str(self._imgMetadata["suffix"])

    def getDatatype(self) -> str:
        return str(self._imgMetadata["datatype"])

    def getEntities(self) -> dict[str, Any]:
        """The BIDS entities (and suffix, datatype) of this image."""
        return filterEntities(self._imgMetadata)

    def getDatasetName(self) -> str:
        return str(self.datasetDescription["Name"])

    # ------------------------------------------------------------ image

    def getImageDimensions(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.image.shape)

    def getImageHeader(self) -> Any:
        return self.image.header

    def getImageData(self) -> np.ndarray:
        """The voxel array, 4-D, in the image's own dtype (int16 from a scanner, say)."""
        return getNiftiData(self.image)

    @property
    def imageData(self) -> np.ndarray:
        """The voxel array (older RT-Cloud scripts read this attribute)."""
        return self.getImageData()

    # ------------------------------------------------------------ names and paths

    def makeBidsFileName(self, extension: BidsFileExtension | str) -> str:
        ext = extension.value if isinstance(extension, BidsFileExtension) else str(extension)
        entities = self.getEntities()
        if ext == BidsFileExtension.EVENTS.value:
            entities["suffix"] = "events"
        return bids_file_name(entities, ext)

    def getImageFileName(self) -> str:
        return self.makeBidsFileName(BidsFileExtension.IMAGE)

    def getMetadataFileName(self) -> str:
        return self.makeBidsFileName(BidsFileExtension.METADATA)

    def getEventsFileName(self) -> str:
        return self.makeBidsFileName(BidsFileExtension.EVENTS)

    def getDataDirPath(self) -> str:
        """``sub-01[/ses-x]/func``: the folder of this image in a dataset."""
        return bids_data_dir(self._imgMetadata)

    def getImageFilePath(self) -> str:
        return self.getDataDirPath() + "/" + self.getImageFileName()

    def getMetadataFilePath(self) -> str:
        return self.getDataDirPath() + "/" + self.getMetadataFileName()

    def getEventsFilePath(self) -> str:
        return self.getDataDirPath() + "/" + self.getEventsFileName()

    # ------------------------------------------------------------ timing

    def getRepetitionTime(self) -> float:
        """Seconds between volumes."""
        return float(self._imgMetadata["RepetitionTime"])

    def getAcquisitionTime(self) -> dt.time:
        """Time of day the (first) volume was acquired.

        Raises StateError when the metadata has no AcquisitionTime (replayed data without
        it, say), saying so.
        """
        value = self._imgMetadata.get("AcquisitionTime")
        if value in (None, ""):
            raise StateError(
                "this BidsIncremental has no AcquisitionTime in its metadata, so the time to "
                "the next TR cannot be known"
            )
        return _parse_time(str(value))

    def timeToNextTr(self, clockSkew: float, now: dt.time | None = None) -> float:
        """Seconds from ``now`` (this computer's clock) until the next TR begins."""
        from rtcloud.imaging.timing import getTimeToNextTR

        if now is None:
            now = dt.datetime.now().time()
        return float(
            getTimeToNextTR(self.getAcquisitionTime(), self.getRepetitionTime(), now, clockSkew)
        )

    # ------------------------------------------------------------ files

    def writeToDisk(self, datasetRoot: str | os.PathLike[str], onlyData: bool = False) -> None:
        """Write the image, its sidecar and events as a BIDS dataset under ``datasetRoot``.

        Unless ``onlyData``, also ``dataset_description.json`` and ``README``.
        """
        root = os.fspath(datasetRoot)
        folder = os.path.join(root, self.getDataDirPath())
        os.makedirs(folder, exist_ok=True)
        nib.save(self.image, os.path.join(folder, self.getImageFileName()))
        with open(os.path.join(folder, self.getMetadataFileName()), "w", encoding="utf-8") as fh:
            fh.write(dumps_sidecar(non_entities(self._imgMetadata)))
        with open(
            os.path.join(folder, self.getEventsFileName()), "w", encoding="utf-8", newline=""
        ) as fh:
            fh.write(events_to_tsv(self._events))
        if onlyData:
            return
        with open(os.path.join(root, "dataset_description.json"), "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.datasetDescription, indent=4) + "\n")
        with open(os.path.join(root, "README"), "w", encoding="utf-8") as fh:
            fh.write(self.readme)

    # ------------------------------------------------------------ by value

    def to_wire(self) -> dict[str, Any]:
        """The incremental by value: the NIfTI file's bytes and plain metadata (no pickle)."""
        return {
            "nifti": self.image.to_bytes(),
            "nifti2": isinstance(self.image, nib.Nifti2Image),
            "metadata": dict(self._imgMetadata),
            "description": dict(self.datasetDescription),
            "readme": self.readme,
            "events": None if self._events is None else events_to_tsv(self._events),
        }

    @classmethod
    def from_wire(cls, form: Mapping[str, Any]) -> BidsIncremental:
        """Rebuild an incremental from :meth:`to_wire`'s form (ProtocolError if malformed)."""
        try:
            raw = form["nifti"]
            metadata, description = form["metadata"], form["description"]
            readme, events = form["readme"], form["events"]
        except (KeyError, TypeError):
            raise ProtocolError("malformed BidsIncremental value") from None
        if (
            not isinstance(raw, (bytes, bytearray, memoryview))
            or not isinstance(metadata, dict)
            or not isinstance(description, dict)
            or not isinstance(readme, str)
            or not (events is None or isinstance(events, str))
        ):
            raise ProtocolError("malformed BidsIncremental value")
        image_cls = nib.Nifti2Image if form.get("nifti2") else nib.Nifti1Image
        try:
            image = image_cls.from_bytes(bytes(raw))
            data = np.asanyarray(image.dataobj)
            expected = math.prod(image.shape) * image.get_data_dtype().itemsize
            if len(raw) < expected:
                raise ValueError("truncated image data")
            image = image_cls(data, image.affine, image.header)
        except Exception as exc:  # nibabel's many errors on a bad header
            raise ProtocolError(
                f"a BidsIncremental's NIfTI image could not be read: {exc}"
            ) from exc
        out = cls.__new__(cls)
        out.image = image
        out._imgMetadata = dict(metadata)
        out.datasetDescription = dict(description)
        out.readme = readme
        out._events = None if events is None else events_from_tsv(events)
        out.version = 1
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_wire, (self.to_wire(),))


def _from_wire(form: Mapping[str, Any]) -> BidsIncremental:
    return BidsIncremental.from_wire(form)


def _parse_time(text: str) -> dt.time:
    """``HHMMSS.ffffff`` (DICOM) or ``HH:MM:SS.ffffff`` (BIDS) as a time of day."""
    cleaned = text.strip().replace(":", "")
    try:
        whole, _, fraction = cleaned.partition(".")
        if len(whole) != 6 or not whole.isdigit():
            raise ValueError
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return dt.time(int(whole[:2]), int(whole[2:4]), int(whole[4:6]), micro)
    except ValueError:
        raise ValidationError(
            f"AcquisitionTime {text!r} is not a time of day (HHMMSS.ffffff or HH:MM:SS.ffffff)"
        ) from None


def bidsIncrementalTimeToNextTr(
    bidsIncremental: BidsIncremental, clockSkew: float, now: dt.time | None = None
) -> float:
    """Seconds until the next TR after ``bidsIncremental``'s volume (RT-Cloud's helper).

    Raises StateError (not RT-Cloud's bare KeyError) when the volume has no AcquisitionTime.
    """
    return bidsIncremental.timeToNextTr(clockSkew, now)
