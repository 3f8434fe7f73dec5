"""DICOM files nobody here wrote: every file pydicom and nibabel ship for their own tests.

pydicom's ``pydicom/data/test_files`` (many transfer syntaxes, odd VRs, padding, sequences,
DICOMDIRs, and some files that are not DICOM at all) and nibabel's
``nibabel/nicom/tests/data`` (Siemens mosaics and DWI, a Philips enhanced multi-frame image),
gzipped ones unpacked. For every file:

- reading: our reader gives what ``dcmread`` gives, element by element (item by item in
  sequences), or refuses with :class:`~rtcloud.errors.InvalidDicomError` where dcmread
  refuses or the file holds no complete image;
- writing: where the fast writer accepts a dataset (as read, and anonymized), its bytes are
  the bytes ``dcmwrite`` writes;
- anonymization never raises, the anonymized volume can be sent (the codec writes and reads
  it back), and no identifying value is left: no value of a person or place attribute, no
  date, no instance UID of the original;
- completeness, for every image file: the whole file is complete exactly when pydicom finds
  all its pixel data (``get_expected_length`` for native data, every frame's fragments for
  encapsulated data), and a file cut short is never complete while the cut lies inside the
  pixel data or inside an element after it. The cuts: every byte around each boundary of the
  pixel data's structure (its element header, each fragment item, byte runs inside fragments
  that look like a sequence delimiter, the delimiter itself), every byte of what follows the
  pixel data, and evenly spaced cuts through the header and through long values. A cut
  exactly between two elements after the pixel data (trailing padding, say) leaves a whole
  image and may be complete.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
import struct
import zlib
from pathlib import Path

import nibabel
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from rtcloud.errors import InvalidDicomError
from rtcloud.imaging.dicom import anonymize_dicom, probe_dicom_bytes, read_dicom_bytes
from rtcloud.imaging.dicom_read import read_dicom_fast
from rtcloud.imaging.dicom_write import write_dicom_bytes_fast
from rtcloud.rpc import codec

# These files are odd on purpose: pydicom warns about many of them. The results are checked.
pytestmark = pytest.mark.filterwarnings("ignore")

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"


def _all_files() -> list[tuple[str, Path]]:
    found = []
    for label, root in (("pydicom", PYDICOM_FILES), ("nibabel", NIBABEL_FILES)):
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found.append((f"{label}/{path.relative_to(root).as_posix()}", path))
    return found


FILES = _all_files()

# ----------------------------------------------------------------------------- known failures
# What walking these files found first (issue 12, section 4). Each is fixed in turn and taken
# off this list; the xfails are strict, so a fixed one fails here until it is taken off.

ENCAPSULATED_THEN_ELEMENT = "encapsulated pixel data followed by another element: never complete"
DELIMITER_CUT = "a cut inside the closing sequence delimiter is judged complete"
FAKE_DELIMITER_CUT = "a cut after fragment bytes that look like the delimiter is judged complete"
TRAILING_CUT = "a cut inside an element after the pixel data is judged complete"
LONG_PIXELS_CUT = "a cut past the image's size inside longer pixel data is judged complete"
ODD_PADDING_CUT = "a cut before the padding byte of odd-length pixel data is judged complete"
YBR_422 = "uncompressed YBR_FULL_422 never complete: chroma subsampling ignored"
DEFLATED_CUT = "a cut inside a deflated data set is judged complete"
BAD_IS = "a malformed IS value (NumberOfFrames '1A') raises a bare ValueError"
DATES = "dates outside the listed attributes stay (RTPlanDate, StructureSetDate, DT values)"
PRIVATE_UID = "an instance UID in a private UI element stays"
IMPLICIT_UNDER_EXPLICIT = (
    "data written implicit under an explicit transfer syntax: TypeError at (0008,0008) when "
    "the anonymized volume is written"
)

_DELIMITER_FILES = """693_J2KI GDCMJ2K_TextGBR J2K_pixelrep_mismatch JPEG-lossy JPEG2000
JPEGLSNearLossless_08 JPEGLSNearLossless_16 JPGExtended SC_jpeg_no_color_transform
SC_jpeg_no_color_transform_2 SC_rgb_dcmtk_+eb+cr SC_rgb_dcmtk_+eb+cy+n1 SC_rgb_dcmtk_+eb+cy+n2
SC_rgb_dcmtk_+eb+cy+np SC_rgb_dcmtk_+eb+cy+s2 SC_rgb_dcmtk_+eb+cy+s4 SC_rgb_gdcm_KY
SC_rgb_jls_lossy_line SC_rgb_jls_lossy_sample SC_rgb_jpeg SC_rgb_jpeg_app14_dcmd
SC_rgb_jpeg_dcmtk SC_rgb_jpeg_gdcm SC_rgb_jpeg_lossy_gdcm SC_rgb_rle SC_rgb_rle_16bit
SC_rgb_rle_16bit_2frame SC_rgb_rle_2frame SC_rgb_rle_32bit SC_rgb_rle_32bit_2frame
SC_rgb_small_odd_jpeg examples_jpeg2k examples_ybr_color rtdose_rle rtdose_rle_1frame""".split()

KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "reads": {},
    "anonymization": {},
    "completeness": {},
}


def cases(test: str, files: list[tuple[str, Path]]) -> list[object]:
    known = KNOWN_FAILURES[test]
    return [
        pytest.param(
            name,
            path,
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason=known[name])] if name in known else [],
        )
        for name, path in files
    ]


IDS = [name for name, _ in FILES]


def test_the_shipped_files_are_there():
    assert len([n for n in IDS if n.startswith("pydicom/")]) >= 80
    assert len([n for n in IDS if n.startswith("nibabel/")]) >= 5


@functools.cache
def load(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def dcmread(data: bytes, force: bool = False) -> Dataset | None:
    """pydicom's reading of the bytes (None where it refuses them)."""
    try:
        return pydicom.dcmread(io.BytesIO(data), force=force)
    except Exception:
        return None


def dcmwrite_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- the oracle


def pixel_data_is_whole(ds: Dataset) -> bool:
    """Whether pydicom finds all of the pixel data of a dataset read from a whole file."""
    if "PixelData" not in ds:
        return False
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if transfer is None:
        return False
    try:
        if transfer.is_encapsulated:
            count = int(ds.get("NumberOfFrames", 1) or 1)
            frames = list(generate_frames(ds.PixelData, number_of_frames=count))
            return len(frames) == count and all(frames)
        expected = get_expected_length(ds, "bytes")
        return len(ds.PixelData) >= expected
    except Exception:
        return False


ITEM = 0xE000FFFE  # (FFFE,E000) read as one little-endian uint32
DELIMITER = 0xE0DDFFFE  # (FFFE,E0DD)
FAKE_DELIMITER = b"\xfe\xff\xdd\xe0"


class Layout:
    """Where the pixel data of a whole file lies, and the element boundaries after it."""

    def __init__(self, data: bytes, ds: Dataset) -> None:
        self.data = data
        raw = ds._dict[pydicom.tag.Tag("PixelData")]
        self.value_start = int(raw.value_tell)
        header = 8 if raw.is_implicit_VR else 12
        self.element_start = self.value_start - header
        self.items: list[int] = []  # fragment item headers (encapsulated data)
        self.fragments: list[tuple[int, int]] = []
        if raw.length == 0xFFFFFFFF:
            at = self.value_start
            while True:
                tag, length = struct.unpack_from("<II", data, at)
                if tag == DELIMITER:
                    self.delimiter = at
                    self.value_end = at + 8
                    break
                assert tag == ITEM, f"not an item at {at}"
                self.items.append(at)
                self.fragments.append((at + 8, at + 8 + length))
                at += 8 + length
        else:
            self.delimiter = None
            self.value_end = self.value_start + int(raw.length)
        # the elements after the pixel data, as pydicom read them
        tags = list(ds._dict)
        after = tags[tags.index(raw.tag) + 1 :]
        self.boundaries = {self.value_end}
        for tag in after:
            elem = ds._dict[tag]
            if getattr(elem, "length", 0xFFFFFFFF) != 0xFFFFFFFF:
                self.boundaries.add(int(elem.value_tell) + int(elem.length))
        self.size = len(data)

    def cuts(self) -> list[int]:
        size = self.size
        # a cut of a large multi-frame header takes dcmread 0.4 s: fewer cuts there
        big = size > 2_000_000
        near = 0 if big else 2  # every byte this far around each boundary

        def around(at: int, before: int = near, after: int = near) -> range:
            return range(at - before, at + after + 1)

        def spread(start: int, end: int, count: int) -> range:
            return range(start, end, max(1, (end - start) // (2 if big else count)))

        points = {*spread(0, self.element_start, 40), *around(self.element_start)}
        points.update(around(self.value_start, near + 10 - 10 * big))  # the element header
        if self.delimiter is None:
            points.update(spread(self.value_start, self.value_end, 16))
            points.update(around(self.value_end))
        else:
            for item in self.items:
                points.update(range(item - 1, item + 10))
            for start, end in self.fragments:
                points.update(spread(start, end, 8), around(end))
                # bytes inside a fragment that look like a sequence delimiter
                at = start
                while (at := self.data.find(FAKE_DELIMITER, at, end)) != -1:
                    points.update(range(at + 1, at + 10))
                    at += 1
            points.update(range(self.delimiter, self.value_end + 1))
        tail = range(self.value_end, size)
        points.update(tail if len(tail) <= 600 else spread(self.value_end, size, 100))
        points.update(around(size))
        return sorted(p for p in points if 0 <= p <= size)


# ----------------------------------------------------------------------------- reading


def same_elements(ours: Dataset, ref: Dataset, where: str = "") -> None:
    """Element by element (item by item in sequences): tag, VR, length kind and value."""
    assert list(ours.keys()) == list(ref.keys()), f"{where}: other elements"
    for tag in ref.keys():
        a, b = ours[tag], ref[tag]
        here = f"{where}{tag}"
        assert (a.VR, a.is_undefined_length) == (b.VR, b.is_undefined_length), here
        if b.VR == "SQ":
            assert len(a.value) == len(b.value), here
            for index, (x, y) in enumerate(zip(a.value, b.value, strict=True)):
                same_elements(x, y, f"{here}[{index}].")
        else:
            assert a.value == b.value, here


def same_as_dcmread(ours: Dataset, ref: Dataset) -> None:
    assert type(ours) is type(ref)
    assert getattr(ours, "preamble", None) == getattr(ref, "preamble", None)
    same_elements(ours.file_meta, ref.file_meta, "file meta ")
    same_elements(ours, ref)
    assert ours == ref


@pytest.mark.parametrize("name,path", cases("reads", FILES))
def test_reads_equal_dcmread(name, path):
    data = load(path)
    ref = dcmread(data)
    fast = read_dicom_fast(data)
    if ref is None:
        assert fast is None
        with pytest.raises(InvalidDicomError):
            read_dicom_bytes(data)
        return
    if fast is not None:
        same_as_dcmread(fast, ref)
    if pixel_data_is_whole(dcmread(data)):
        same_as_dcmread(read_dicom_bytes(data), ref)
    else:  # no image, or not all of it: refused with our error, never another one
        with pytest.raises(InvalidDicomError):
            read_dicom_bytes(data)


@pytest.mark.parametrize("name,path", FILES, ids=IDS)
def test_a_dataset_sent_to_a_script_arrives_as_dcmread_reads_it(name, path):
    """Sent through the codec (every binary value out of band, as large volumes go), a
    dataset arrives as dcmread reads the bytes dcmwrite makes of it; pixel data sent as its
    own buffer arrives as the very bytes object received, uncopied."""
    data = load(path)
    ds = dcmread(data)
    if ds is None or "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        pytest.skip("not a file pydicom reads without force, with a transfer syntax")
    try:
        ref = pydicom.dcmread(io.BytesIO(dcmwrite_bytes(dcmread(data))))
    except Exception:
        pytest.skip("dcmwrite cannot write it")
    payload, buffers = codec.encode_parts(ds, oob_threshold=1)
    received = [[bytes(buffer)] for buffer in buffers]
    out = codec.decode_parts(payload, received)
    same_as_dcmread(out, ref)
    pixels = ds._dict.get(0x7FE00010)
    if len(buffers) == 2 and type(getattr(pixels, "value", None)) is bytes:
        assert buffers[1].obj is pixels.value  # sent without a copy
        if read_dicom_fast(received[0][0], pixel_data=received[1][0]) is not None:
            assert out._dict[0x7FE00010].value is received[1][0]  # kept without a copy


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("name,path", FILES, ids=IDS)
def test_fast_writer_writes_what_dcmwrite_writes(name, path):
    data = load(path)
    if dcmread(data) is None:
        pytest.skip("not a file pydicom reads without force")
    for anonymize in (False, True):
        ds = dcmread(data)
        if anonymize:
            anonymize_dicom(ds)
        fast = write_dicom_bytes_fast(ds)
        if fast is not None:
            assert fast == dcmwrite_bytes(ds)


# ----------------------------------------------------------------------------- anonymization

#: Attributes whose values name a person or place (any of them left over is a leak).
PERSON_KEYWORDS = frozenset(
    """PatientName PatientID IssuerOfPatientID OtherPatientIDs OtherPatientNames
    PatientBirthName PatientMotherBirthName PatientAddress PatientTelephoneNumbers
    MilitaryRank BranchOfService MedicalRecordLocator ResponsiblePerson
    ResponsibleOrganization ReferringPhysicianName ReferringPhysicianAddress
    ReferringPhysicianTelephoneNumbers ConsultingPhysicianName PerformingPhysicianName
    NameOfPhysiciansReadingStudy PhysiciansOfRecord RequestingPhysician
    ScheduledPerformingPhysicianName OperatorsName InstitutionName InstitutionAddress
    InstitutionalDepartmentName StationName DeviceSerialNumber AccessionNumber
    AdmissionID""".split()
)
#: Placeholders earlier anonymizers left in these files: not identifying.
PLACEHOLDERS = {"anon", "anonymous", "anonymized", "anonymised"}
#: Identifying-looking values that stay for a reason: (file, value) -> where and why.
KNOWN = {
    # InstitutionName 'TOSHIBA' is the start of Manufacturer 'TOSHIBA_MEC' (the vendor)
    **{
        (f"pydicom/{n}", "TOSHIBA"): "Manufacturer"
        for n in (
            "MR_small.dcm MR_small_RLE.dcm MR_small_bigendian.dcm MR_small_expb.dcm "
            "MR_small_implicit.dcm MR_small_jp2klossless.dcm MR_small_jpeg_ls_lossless.dcm "
            "MR_small_padded.dcm MR_truncated.dcm zipMR.gz"
        ).split()
    },
    # DeviceSerialNumber '17388' is also a run of digits inside an ImagePositionPatient value
    ("nibabel/philips_mprage.dcm.gz", "17388"): "ImagePositionPatient",
}
DATE = re.compile(rb"(?<![0-9])(19|20)[0-9]{6}")


def _walk(ds: Dataset):
    yield ds
    for element in list(ds):
        if element.VR == "SQ" and element.value is not None:
            for item in element.value:
                yield from _walk(item)


def _strings(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def identifying_values(ds: Dataset) -> set[str]:
    """Values of person and place attributes, dates, and instance UIDs, at any depth."""
    found: set[str] = set()
    meta = getattr(ds, "file_meta", None)
    for item in [*_walk(ds), *([meta] if meta is not None else [])]:
        for element in item:
            if element.VR == "SQ":
                continue
            values = [v.strip() for v in _strings(element.value)]
            if element.VR == "UI":
                found.update(v for v in values if len(v) > 8 and UID(v).name == v)
            elif element.VR in ("DA", "DT"):
                found.update(v[:8] for v in values if DATE.fullmatch(v[:8].encode()))
            elif element.keyword in PERSON_KEYWORDS:
                found.update(v for v in values if len(v) >= 4)
    return {v for v in found if v.lower() not in PLACEHOLDERS}


def readable_with_force(data: bytes) -> Dataset | None:
    """A dataset pydicom reads (also without file meta) and can walk: a DICOM data set."""
    ds = dcmread(data, force=True)
    if ds is None or len(ds) == 0:
        return None
    try:
        for item in _walk(ds):
            for element in item:
                _ = element.value
    except Exception:
        return None
    if not any(0x00080000 <= tag < 0x7FE00000 for tag in ds.keys()):
        return None  # text read as a few nonsense elements
    return dcmread(data, force=True)  # fresh: the walk decoded every element


@pytest.mark.parametrize("name,path", cases("anonymization", FILES))
def test_anonymization_never_raises_and_leaves_nothing_identifying(name, path):
    data = load(path)
    original = dcmread(data) or readable_with_force(data)
    if original is None:
        pytest.skip("not a DICOM data set")
    secrets = identifying_values(original)
    ds = dcmread(data) or dcmread(data, force=True)
    anonymize_dicom(ds)
    if getattr(ds, "file_meta", None) is not None and "TransferSyntaxUID" in ds.file_meta:
        # the way a volume leaves the scanner side: written, and read back by the script
        written = codec.encode(ds)
        ds = codec.decode(written)
    else:
        written = dcmwrite_bytes(ds)
    # a DICOMDIR's records name the files of the set by path, and these sets' folders are
    # named by patient ID: the paths stay, or the files cannot be found
    paths: set[str] = set()
    for item in _walk(ds):
        for element in item:
            if element.keyword in PERSON_KEYWORDS:
                assert not element.value, f"{element.keyword} = {element.value!r}"
            elif element.VR == "DA" and not element.tag.is_private:
                assert not element.value, f"{element.keyword} = {element.value!r}"
            elif element.keyword == "ReferencedFileID":
                paths.update(_strings(element.value))
    left = {
        value
        for value in secrets
        if (name, value) not in KNOWN
        and value not in paths
        and any(value.encode(enc, "ignore") in written for enc in ("utf-8", "latin-1"))
    }
    assert left == set()


# ----------------------------------------------------------------------------- completeness


def image_files() -> list[tuple[str, Path]]:
    chosen = []
    for name, path in FILES:
        ds = dcmread(load(path))
        if ds is not None and "PixelData" in ds:
            chosen.append((name, path))
    return chosen


IMAGES = image_files()


def test_there_are_many_images_of_many_transfer_syntaxes():
    syntaxes = {dcmread(load(path)).file_meta.get("TransferSyntaxUID") for _, path in IMAGES}
    assert len(IMAGES) >= 60
    assert len(syntaxes) >= 12


def deflate_stream_end(data: bytes, ds: Dataset) -> int:
    """Where the deflated data set of a whole file ends (its file meta is pydicom's)."""
    start = 132 + 12 + ds.file_meta.FileMetaInformationGroupLength
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflater.decompress(data[start:])
    assert inflater.eof
    return len(data) - len(inflater.unused_data)


@pytest.mark.parametrize("name,path", cases("completeness", IMAGES))
def test_completeness_of_every_cut(name, path):
    data = load(path)
    ds = dcmread(data)
    whole = pixel_data_is_whole(ds)
    transfer = ds.file_meta.get("TransferSyntaxUID")
    if transfer is not None and transfer.is_deflated:
        # element positions are those of the inflated data set: cut the file evenly, and
        # every byte around the end of the deflate stream (which a trailer may follow)
        stream_end = deflate_stream_end(data, ds)
        cuts = sorted(
            {
                *range(0, len(data), max(1, len(data) // 200)),
                *range(stream_end - 16, len(data) + 1),
            }
        )
        boundaries = {stream_end, len(data)}
    else:
        layout = Layout(data, dcmread(data))
        if whole:
            assert max(layout.boundaries) == len(data), "bytes after the last element"
        cuts, boundaries = layout.cuts(), layout.boundaries
    wrong = []
    for cut in cuts:
        probe = probe_dicom_bytes(data[:cut])
        expected = whole and cut in boundaries
        if (probe.dataset is not None) != expected:
            wrong.append((cut, expected, probe.reason))
        elif whole and probe.needed_size is not None and probe.needed_size > len(data):
            # a watcher would wait for bytes that never come
            wrong.append((cut, f"needs {probe.needed_size} of {len(data)} bytes"))
    assert wrong == [], f"{len(data)} bytes"
