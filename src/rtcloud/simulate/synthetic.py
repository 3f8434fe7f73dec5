"""A synthetic scanner series with a visible block design, in each layout scanners write.

- ``mosaic`` (Siemens VB/VE): each volume is a classic MR Image Storage file (explicit VR
  little endian, 16-bit) holding the slices as tiles of one mosaic, with the Siemens CSA
  image header that analysis tools (nibabel, dcm2niix) read for the slice count, slice
  direction and slice times.
- ``enhanced`` (Siemens XA "enhanced" export, Philips): each volume is one Enhanced MR Image
  Storage file, a frame per slice, with the geometry and timing in the shared and per-frame
  functional groups (PlanePositionSequence, FrameContentSequence with
  FrameAcquisitionDateTime, DimensionIndexValues ...), and no CSA header.
- ``slices`` (Siemens XA "interoperability" export, GE, Philips): one classic MR Image
  Storage file per slice, with ImagePositionPatient, SliceLocation, InstanceNumber (running
  through the series), AcquisitionNumber and TemporalPositionIdentifier (the volume),
  ImagesInAcquisition (the slices of a volume) and each slice's AcquisitionTime.

All have consistent geometry, acquisition times advancing by TR (slices ascending within
it), and identifying-looking patient attributes for anonymization tests.

The content is a smooth head-like ellipsoid with noise and, in a box-shaped region of
interest, a block-design activation (``block`` volumes off, ``block`` on, ...) of a few
percent, so feedback values visibly follow the blocks. Voxel indices (``activation_roi``) are
those of the NIfTI image a converter (ours, or dcm2niix) makes of each file. With
``motion`` > 0 the head also moves (``head_motion``: a slow drift and, every 40 volumes, a
sudden movement of two volumes), for the Quality tab and the motion correction to show.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from rtcloud.imaging.dicom import write_dicom_bytes

__all__ = [
    "LAYOUTS",
    "SeriesSpec",
    "activation_roi",
    "encode_csa2",
    "generate_series",
    "head_motion",
    "make_volume_dataset",
    "make_volume_datasets",
]

#: The layouts the simulator writes (see the module docstring).
LAYOUTS = ("mosaic", "enhanced", "slices", "enhanced-slices")

#: Voxel ranges (x, y, z as fractions of the shape) of the activated region.
ROI_FRACTIONS = ((0.5625, 0.75), (0.5625, 0.75), (0.4, 0.6))


def activation_roi(shape: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Voxel index ranges [start, stop) of the activated box for a volume shape."""
    return tuple(
        (int(round(lo * n)), max(int(round(lo * n)) + 1, int(round(hi * n))))
        for (lo, hi), n in zip(ROI_FRACTIONS, shape, strict=True)
    )


#: CSA "syngo data type" codes of the value representations the simulator writes.
_CSA_SYNGODT = {"FD": 4, "IS": 6, "DS": 3, "US": 10, "SH": 22, "LO": 19, "CS": 16, "UL": 9}


def encode_csa2(tags: dict[str, tuple[str, Sequence[str]]]) -> bytes:
    """Siemens CSA2 ("SV10") header bytes for ``{name: (vr, [values as text])}``.

    Laid out as a scanner writes it, which readers (nibabel, dcm2niix) rely on: a tag has at
    least six items, the unused ones empty (their length words 0, their check word 205), its
    VM is the count of values, and its syngo data type code matches the VR.
    """
    out = [b"SV10", b"\x04\x03\x02\x01", struct.pack("<2I", len(tags), 77)]
    for name, (vr, values) in tags.items():
        n_items = max(6, len(values))
        out.append(
            struct.pack(
                "<64si4s3i",
                name.encode("ascii"),
                len(values),
                vr.encode("ascii"),
                _CSA_SYNGODT.get(vr, 0),
                n_items,
                77,
            )
        )
        for value in values:
            raw = value.encode("ascii") + b"\0"
            out.append(struct.pack("<4i", len(raw), len(raw), 77, len(raw)))
            out.append(raw + b"\0" * ((4 - len(raw) % 4) % 4))
        out.extend(struct.pack("<4i", 0, 0, 205, 0) for _ in range(n_items - len(values)))
    return b"".join(out)


@dataclass(frozen=True)
class SeriesSpec:
    """Shape and timing of a synthetic series."""

    shape: tuple[int, int, int] = (64, 64, 30)
    voxel_mm: tuple[float, float, float] = (3.0, 3.0, 3.5)
    tr_ms: int = 2000
    block: int = 10
    activation: float = 0.04
    noise: float = 0.01
    seed: int = 0
    motion: float = 0.0


def head_motion(index: int, amount: float) -> np.ndarray:
    """The simulated head's six parameters at volume ``index`` (mm and degrees, as
    :mod:`rtcloud.preprocess.motion` reports them), scaled by ``amount``."""
    t = float(index)
    params = np.array(
        [
            0.6 * math.sin(t / 17),
            0.4 * math.sin(t / 23 + 1) - 0.4 * math.sin(1),
            0.8 * math.sin(t / 29 + 2) - 0.8 * math.sin(2),
            0.5 * math.sin(t / 19 + 0.5) - 0.5 * math.sin(0.5),
            0.3 * math.sin(t / 31 + 1.5) - 0.3 * math.sin(1.5),
            0.4 * math.sin(t / 13 + 2.5) - 0.4 * math.sin(2.5),
        ]
    )
    if index % 40 in (25, 26):  # the participant moves suddenly, then settles back
        params[2] += 1.2
        params[3] += 0.8
    return amount * params


def _moved(volume: np.ndarray, params: np.ndarray, voxel_mm: Sequence[float]) -> np.ndarray:
    """``volume`` as seen after the head moved by ``params`` (about the volume's centre)."""
    from scipy import ndimage

    from rtcloud.preprocess.motion import rigid_matrix

    # the NIfTI image's axes (see _mosaic): x towards the left, so RAS x runs against it
    affine = np.diag([-voxel_mm[0], voxel_mm[1], voxel_mm[2], 1.0])
    center = affine[:3, :3] @ ((np.array(volume.shape) - 1) / 2.0)
    to_source = np.linalg.inv(affine) @ np.linalg.inv(rigid_matrix(params, center)) @ affine
    moved: np.ndarray = ndimage.affine_transform(
        volume, to_source[:3, :3], offset=to_source[:3, 3], order=1, mode="nearest"
    )
    return moved


def _phantom(spec: SeriesSpec) -> np.ndarray:
    nx, ny, nz = spec.shape
    x, y, z = np.meshgrid(
        np.linspace(-1, 1, nx), np.linspace(-1, 1, ny), np.linspace(-1, 1, nz), indexing="ij"
    )
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2)
    head = np.clip(1.2 - r, 0, 0.2) / 0.2  # soft edge
    texture = 0.85 + 0.15 * np.cos(6 * x) * np.cos(5 * y) * np.cos(4 * z)
    return 800.0 * head * texture


def _mosaic(volume: np.ndarray) -> np.ndarray:
    """Tile a volume indexed as its NIfTI image will be (dcm2niix's voxel order).

    A NIfTI image's ``i`` runs along a DICOM row and its ``j`` up the rows (bottom row
    first), so slice ``k`` is stored as ``volume[:, ::-1, k].T``: the converted image's array
    is then ``volume`` itself, and voxel indices (the activated box) mean the same in both.
    """
    nx, ny, nz = volume.shape
    grid = int(math.ceil(math.sqrt(nz)))
    mosaic = np.zeros((grid * ny, grid * nx), dtype=np.uint16)
    for k in range(nz):
        r, c = divmod(k, grid)
        mosaic[r * ny : (r + 1) * ny, c * nx : (c + 1) * nx] = volume[:, ::-1, k].T
    return mosaic


def _volume_pixels(
    index: int, spec: SeriesSpec, base: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Volume ``index`` as uint16, indexed as its NIfTI image (dcm2niix's voxel order)."""
    volume = base.copy()
    on = (index // spec.block) % 2 == 1
    if on:
        (x0, x1), (y0, y1), (z0, z1) = activation_roi(spec.shape)
        volume[x0:x1, y0:y1, z0:z1] *= 1.0 + spec.activation
    if spec.motion:
        volume = _moved(volume, head_motion(index, spec.motion), spec.voxel_mm)
    volume = volume * (1.0 + spec.noise * rng.standard_normal(volume.shape)) + 20.0
    pixels: np.ndarray = np.clip(volume, 0, 65535).astype(np.uint16)
    return pixels


def _slice_plane(volume: np.ndarray, k: int) -> np.ndarray:
    """Slice ``k`` as a DICOM image stores it (rows down, columns across); see _mosaic."""
    return np.ascontiguousarray(volume[:, ::-1, k].T)


#: Axial slices: rows along +x, columns along +y (patient LPS), slices along +z.
_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _first_slice_position(spec: SeriesSpec) -> np.ndarray:
    nx, ny, nz = spec.shape
    dx, dy, dz = spec.voxel_mm
    return np.array([-(nx - 1) * dx / 2, -(ny - 1) * dy / 2, -(nz - 1) * dz / 2])


def _slice_offsets_ms(spec: SeriesSpec) -> list[float]:
    """When each slice is acquired within a TR (ascending, evenly spaced)."""
    nz = spec.shape[2]
    return [k * spec.tr_ms / nz for k in range(nz)]


def _header(
    sop_class: str,
    index: int,
    spec: SeriesSpec,
    *,
    series_uid: str,
    study_uid: str,
    frame_uid: str,
    scan: int,
    start: dt.datetime,
) -> Dataset:
    """What every layout's object shares: identity, patient, study, series and timing."""
    acquired = start + dt.timedelta(milliseconds=index * spec.tr_ms)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(prefix="1.2.826.0.1.3680043.10.1001.")
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Synthetic"
    # identifying-looking values: material for anonymization
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "RTC-000123"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "F"
    ds.PatientAge = "045Y"
    ds.PatientWeight = "61.5"
    ds.InstitutionName = "Example Imaging Center"
    ds.InstitutionAddress = "1 Scanner Road, Brainville"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.OperatorsName = "Tech^Terry"
    ds.StationName = "SYNTH01"
    ds.DeviceSerialNumber = "99999"
    ds.StudyDescription = "rtcloud^synthetic"
    ds.StudyDate = start.strftime("%Y%m%d")
    ds.SeriesDate = ds.StudyDate
    ds.AcquisitionDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.StudyTime = start.strftime("%H%M%S")
    ds.AcquisitionTime = acquired.strftime("%H%M%S.%f")
    ds.ContentTime = ds.AcquisitionTime
    ds.SeriesDescription = "func_bold_synthetic"
    ds.ProtocolName = "func_bold_synthetic"
    ds.SeriesNumber = scan
    ds.PatientPosition = "HFS"
    ds.AcquisitionNumber = index + 1
    ds.InstanceNumber = index + 1
    ds.MagneticFieldStrength = "3"
    ds.MRAcquisitionType = "2D"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def _classic_mr(ds: Dataset, spec: SeriesSpec) -> None:
    """The MR Image module's acquisition values, at the top level (classic objects)."""
    nx, ny, nz = spec.shape
    dx, dy, dz = spec.voxel_mm
    ds.ScanningSequence = "EP"
    ds.SequenceVariant = "SK"
    ds.RepetitionTime = str(spec.tr_ms)
    ds.EchoTime = "30"
    ds.FlipAngle = "70"
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.SliceThickness = str(dz)
    ds.SpacingBetweenSlices = str(dz)
    ds.PixelSpacing = [str(dy), str(dx)]
    ds.ImageOrientationPatient = [str(v) for v in _IOP]
    ds.AcquisitionMatrix = [0, nx, ny, 0]


def make_volume_dataset(
    index: int,
    spec: SeriesSpec,
    *,
    base: np.ndarray,
    rng: np.random.Generator,
    series_uid: str,
    study_uid: str,
    frame_uid: str,
    scan: int,
    start: dt.datetime,
) -> Dataset:
    """The mosaic DICOM dataset of volume ``index`` of a series."""
    nx, ny, nz = spec.shape
    pixels = _mosaic(_volume_pixels(index, spec, base, rng))
    rows, cols = pixels.shape
    dx, dy, dz = spec.voxel_mm
    slice0 = _first_slice_position(spec)
    # Siemens stores the position of the whole mosaic; shift back from the first tile
    row_dir, col_dir = np.array(_IOP[:3]), np.array(_IOP[3:])
    shift = ((cols - nx) / 2) * dx * row_dir + ((rows - ny) / 2) * dy * col_dir
    mosaic_pos = slice0 - shift
    ds = _header(
        MRImageStorage,
        index,
        spec,
        series_uid=series_uid,
        study_uid=study_uid,
        frame_uid=frame_uid,
        scan=scan,
        start=start,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    _classic_mr(ds, spec)
    ds.ImagePositionPatient = [f"{v:.6f}" for v in mosaic_pos]
    ds.Rows, ds.Columns = rows, cols
    # Siemens private data: mosaic slice count, and the CSA image header
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0A, "US", nz)
    csa = encode_csa2(
        {
            "NumberOfImagesInMosaic": ("IS", [str(nz)]),
            "AcquisitionMatrixText": ("SH", [f"{nx}p*{ny}"]),
            "SliceNormalVector": ("FD", ["0.0", "0.0", "1.0"]),
            "PhaseEncodingDirectionPositive": ("IS", ["1"]),
            "BandwidthPerPixelPhaseEncode": ("FD", ["40.0"]),
            "MosaicRefAcqTimes": ("FD", [f"{t:.4f}" for t in _slice_offsets_ms(spec)]),
        }
    )
    csa_block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    csa_block.add_new(0x08, "CS", "IMAGE NUM 4")
    csa_block.add_new(0x10, "OB", csa)
    ds.PixelData = pixels.tobytes()
    return ds


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _enhanced_dataset(
    index: int,
    spec: SeriesSpec,
    volume: np.ndarray,
    header: Dataset,
    dimension_uid: str,
    start: dt.datetime,
) -> Dataset:
    """Volume ``index`` as one Enhanced MR Image Storage object, a frame per slice."""
    nx, ny, nz = spec.shape
    dx, dy, dz = spec.voxel_mm
    ds = header
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SoftwareVersions = "syngo MR XA30"
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.ImagingFrequency = "123.2"
    ds.PulseSequenceName = "epfid2d1"
    ds.EchoPulseSequence = "GRADIENT"
    ds.AcquisitionContrast = "T2_STAR"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.VolumetricProperties = "VOLUME"
    ds.NumberOfFrames = nz
    ds.Rows, ds.Columns = ny, nx
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.DimensionOrganizationSequence = DicomSequence(
        [_item(DimensionOrganizationUID=dimension_uid)]
    )
    ds.DimensionIndexSequence = DicomSequence(
        [
            _item(
                DimensionOrganizationUID=dimension_uid,
                DimensionIndexPointer=0x00209056,  # StackID
                FunctionalGroupPointer=0x00209111,  # FrameContentSequence
            ),
            _item(
                DimensionOrganizationUID=dimension_uid,
                DimensionIndexPointer=0x00209057,  # InStackPositionNumber
                FunctionalGroupPointer=0x00209111,
            ),
        ]
    )
    shared = _item(
        PixelMeasuresSequence=DicomSequence(
            [
                _item(
                    PixelSpacing=[str(dy), str(dx)],
                    SliceThickness=str(dz),
                    SpacingBetweenSlices=str(dz),
                )
            ]
        ),
        PlaneOrientationSequence=DicomSequence(
            [_item(ImageOrientationPatient=[str(v) for v in _IOP])]
        ),
        MRTimingAndRelatedParametersSequence=DicomSequence(
            [_item(RepetitionTime=str(spec.tr_ms), FlipAngle="70", EchoTrainLength=1)]
        ),
        MREchoSequence=DicomSequence([_item(EffectiveEchoTime=30.0)]),
        MRFOVGeometrySequence=DicomSequence(
            [_item(InPlanePhaseEncodingDirection="COLUMN", MRAcquisitionFrequencyEncodingSteps=nx)]
        ),
        PixelValueTransformationSequence=DicomSequence(
            [_item(RescaleIntercept="0", RescaleSlope="1", RescaleType="US")]
        ),
    )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    slice0 = _first_slice_position(spec)
    frames = []
    volume_start = start + dt.timedelta(milliseconds=index * spec.tr_ms)
    for k, offset in enumerate(_slice_offsets_ms(spec)):
        acquired = volume_start + dt.timedelta(milliseconds=offset)
        stamp = acquired.strftime("%Y%m%d%H%M%S.%f")
        position = slice0 + np.array([0.0, 0.0, k * dz])
        frames.append(
            _item(
                FrameContentSequence=DicomSequence(
                    [
                        _item(
                            FrameAcquisitionDateTime=stamp,
                            FrameReferenceDateTime=stamp,
                            FrameAcquisitionDuration=spec.tr_ms / nz,
                            StackID="1",
                            InStackPositionNumber=k + 1,
                            TemporalPositionIndex=index + 1,
                            DimensionIndexValues=[1, k + 1],
                        )
                    ]
                ),
                PlanePositionSequence=DicomSequence(
                    [_item(ImagePositionPatient=[f"{v:.6f}" for v in position])]
                ),
            )
        )
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = b"".join(_slice_plane(volume, k).tobytes() for k in range(nz))
    return ds


def _single_frames(whole: Dataset, index: int, spec: SeriesSpec) -> list[Dataset]:
    """An enhanced volume as one-frame enhanced objects, one per slice (as Siemens XA can
    export a series): each keeps the shared groups and its own frame's groups."""
    nz = spec.shape[2]
    pixels, frames = whole.PixelData, list(whole.PerFrameFunctionalGroupsSequence)
    del whole.PixelData, whole.PerFrameFunctionalGroupsSequence  # not copied for each slice
    plane = len(pixels) // nz
    out = []
    for k, frame in enumerate(frames):
        ds = copy.deepcopy(whole)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = index * nz + k + 1
        ds.NumberOfFrames = 1
        ds.PerFrameFunctionalGroupsSequence = DicomSequence([frame])
        ds.PixelData = pixels[k * plane : (k + 1) * plane]
        out.append(ds)
    return out


def _slice_datasets(
    index: int, spec: SeriesSpec, volume: np.ndarray, make_header: Any, num_volumes: int
) -> list[Dataset]:
    """Volume ``index`` as classic MR Image Storage objects, one per slice."""
    nx, ny, nz = spec.shape
    dz = spec.voxel_mm[2]
    slice0 = _first_slice_position(spec)
    out = []
    for k, offset in enumerate(_slice_offsets_ms(spec)):
        ds = make_header()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SoftwareVersions = "syngo MR XA30"
        _classic_mr(ds, spec)
        acquired = dt.datetime.strptime(str(ds.AcquisitionTime), "%H%M%S.%f") + dt.timedelta(
            milliseconds=offset
        )
        ds.AcquisitionTime = acquired.strftime("%H%M%S.%f")
        ds.ContentTime = ds.AcquisitionTime
        ds.InstanceNumber = index * nz + k + 1
        ds.AcquisitionNumber = index + 1
        ds.TemporalPositionIdentifier = index + 1
        ds.NumberOfTemporalPositions = num_volumes
        ds.ImagesInAcquisition = nz
        position = slice0 + np.array([0.0, 0.0, k * dz])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.SliceLocation = f"{position[2]:.6f}"
        ds.Rows, ds.Columns = ny, nx
        ds.PixelData = _slice_plane(volume, k).tobytes()
        out.append(ds)
    return out


def make_volume_datasets(
    index: int,
    spec: SeriesSpec,
    *,
    layout: str = "mosaic",
    base: np.ndarray,
    rng: np.random.Generator,
    series_uid: str,
    study_uid: str,
    frame_uid: str,
    scan: int,
    start: dt.datetime,
    num_volumes: int = 1,
    dimension_uid: str = "",
) -> list[Dataset]:
    """The DICOM objects of volume ``index`` in a layout: one, or one per slice."""
    ids = {
        "series_uid": series_uid,
        "study_uid": study_uid,
        "frame_uid": frame_uid,
        "scan": scan,
        "start": start,
    }
    if layout == "mosaic":
        return [make_volume_dataset(index, spec, base=base, rng=rng, **ids)]  # type: ignore[arg-type]
    volume = _volume_pixels(index, spec, base, rng)
    if layout in ("enhanced", "enhanced-slices"):
        header = _header(EnhancedMRImageStorage, index, spec, **ids)  # type: ignore[arg-type]
        whole = _enhanced_dataset(index, spec, volume, header, dimension_uid, start)
        return [whole] if layout == "enhanced" else _single_frames(whole, index, spec)
    if layout == "slices":
        return _slice_datasets(
            index,
            spec,
            volume,
            lambda: _header(MRImageStorage, index, spec, **ids),  # type: ignore[arg-type]
            num_volumes,
        )
    raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")


def generate_series(
    out_dir: str | Path,
    *,
    num_volumes: int = 20,
    shape: tuple[int, int, int] = (64, 64, 30),
    tr_ms: int = 2000,
    pattern: str = "001_{SCAN:06d}_{TR:06d}.dcm",
    scan: int = 1,
    seed: int = 0,
    block: int = 10,
    start: dt.datetime | None = None,
    layout: str = "mosaic",
    motion: float = 0.0,
) -> list[Path]:
    """Write ``num_volumes`` volumes into ``out_dir`` in a layout; return the file paths.

    ``pattern`` names file ``TR`` (0-based) of scan ``SCAN``: volume TR for the mosaic and
    enhanced layouts, the TR-th slice file of the series (volume TR // slices, slice
    TR % slices) for ``slices``. ``motion`` scales the simulated head motion (0: a still
    head; 1: up to about 1 mm and 1 degree).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    spec = SeriesSpec(shape=shape, tr_ms=tr_ms, block=block, seed=seed, motion=motion)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = _phantom(spec)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    dimension_uid = generate_uid()
    start = start or dt.datetime.now().replace(microsecond=0)
    paths: list[Path] = []
    for index in range(num_volumes):
        datasets = make_volume_datasets(
            index,
            spec,
            layout=layout,
            base=base,
            rng=rng,
            series_uid=series_uid,
            study_uid=study_uid,
            frame_uid=frame_uid,
            scan=scan,
            start=start,
            num_volumes=num_volumes,
            dimension_uid=dimension_uid,
        )
        for ds in datasets:
            path = out / pattern.format(SCAN=scan, TR=len(paths))
            path.write_bytes(write_dicom_bytes(ds))
            paths.append(path)
    return paths
