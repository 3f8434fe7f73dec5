"""rtcloud.rpc.codec: supported types round-trip; unsupported and hostile input fail clearly."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import io
import os
import pathlib
import time

import msgpack
import numpy as np
import pytest

from imaging.dicom_cases import patch_dcmwrite_to_fail
from rtcloud.errors import ProtocolError, SerializationError, ValidationError
from rtcloud.rpc import codec
from rtcloud.structdict import StructDict


def roundtrip(value):
    return codec.decode(codec.encode(value))


class Color(enum.IntEnum):
    RED = 1


class Plain(enum.Enum):
    A = "a"


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        2**200,
        -(2**200),
        1.5,
        float("inf"),
        "",
        "héllo ✓",
        b"",
        b"\x00\xff" * 10,
        [],
        [1, [2, [3]]],
        (),
        (1, (2, "x"), [3]),
        {"a": 1, "b": [1, 2]},
        {1: "one", (2, 3): "tuple key", None: 0, b"k": 1},
        {1, 2, "x", (3, 4)},
        frozenset({1, 2}),
        1 + 2j,
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2024, 5, 6),
        dt.time(7, 8, 9, 10),
        dt.timedelta(days=-3, seconds=5, microseconds=7),
        {"nested": {"deep": [(1, {2: {3}})]}},
    ],
)
def test_round_trip_keeps_value_and_type(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_nan_round_trips():
    out = roundtrip(float("nan"))
    assert out != out


def test_tuples_stay_tuples_and_lists_stay_lists_when_nested():
    out = roundtrip({"t": (1, [2, (3,)]), "l": [(4,)]})
    assert type(out["t"]) is tuple and type(out["t"][1]) is list and type(out["t"][1][1]) is tuple
    assert type(out["l"][0]) is tuple


def test_buffers_and_subclasses_arrive_as_base_types():
    out = roundtrip(
        [
            bytearray(b"ab"),
            memoryview(b"cd"),
            Color.RED,
            collections.OrderedDict(a=1),
            np.str_("s"),
        ]
    )
    assert out == [b"ab", b"cd", 1, {"a": 1}, "s"]
    assert [type(v) for v in out] == [bytes, bytes, int, dict, str]


def test_paths_arrive_as_strings():
    assert roundtrip(pathlib.PurePosixPath("/a/b")) == "/a/b"
    assert roundtrip(pathlib.PureWindowsPath("C:/x")) == "C:\\x"


def test_structdict_round_trips_as_structdict():
    value = StructDict(runNum=[1, 2], sub=StructDict(x=1), plain={"y": 2})
    out = roundtrip(value)
    assert type(out) is StructDict and out == value
    assert type(out["sub"]) is StructDict and out.sub.x == 1
    assert type(out["plain"]) is dict


def test_large_bytes_go_out_of_band_uncopied():
    big = os.urandom(codec.OOB_THRESHOLD)
    payload, buffers = codec.encode_parts({"file": big, "small": b"x" * 10})
    assert len(payload) < 100
    assert len(buffers) == 1 and buffers[0].obj is big  # a view, not a copy
    assert codec.decode_parts(payload, [[bytes(buffers[0])]]) == {"file": big, "small": b"x" * 10}


def test_out_of_band_value_may_arrive_in_many_pieces():
    big = os.urandom(200_000)
    arr = np.arange(50_000, dtype=np.float64)
    payload, buffers = codec.encode_parts([big, arr])
    pieces = [[bytes(b[i : i + 7777]) for i in range(0, len(b), 7777)] for b in buffers]
    out = codec.decode_parts(payload, pieces)
    assert out[0] == big
    np.testing.assert_array_equal(out[1], arr)


def test_mutable_buffers_are_snapshotted_when_encoded():
    data = bytearray(b"a" * codec.OOB_THRESHOLD)
    arr = np.zeros(codec.OOB_THRESHOLD, dtype=np.uint8)
    payload, buffers = codec.encode_parts([data, arr])
    data[:] = b"b" * len(data)
    arr[:] = 7
    out = codec.decode_parts(payload, [[bytes(b)] for b in buffers])
    assert out[0] == b"a" * codec.OOB_THRESHOLD
    assert not out[1].any()


def test_more_buffers_than_allowed_go_in_band():
    values = [os.urandom(100) for _ in range(5)]
    payload, buffers = codec.encode_parts(values, oob_threshold=10, max_buffers=2)
    assert len(buffers) == 2
    assert codec.decode_parts(payload, [[b] for b in buffers]) == values


@pytest.mark.parametrize(
    "dtype",
    ["u1", "i2", ">i4", "<i8", "f2", "f4", ">f8", "c8", "c16", "?", "M8[ns]", "m8[s]", "S5", "U3"],
)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4), (2, 0, 3), (2, 3, 4)])
def test_numpy_arrays_round_trip(dtype, shape):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 120, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    array = raw.view(dtype).reshape(shape) if shape else raw.view(dtype).reshape(())
    out = roundtrip(array)
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tobytes() == array.tobytes()
    assert out.flags.c_contiguous and out.flags.writeable


def test_non_contiguous_and_large_arrays_round_trip():
    base = np.arange(600_000, dtype=np.float32).reshape(600, 1000)
    view = base[::2, ::-3]
    out = roundtrip({"v": view, "f": np.asfortranarray(base)})
    np.testing.assert_array_equal(out["v"], view)
    np.testing.assert_array_equal(out["f"], base)
    out["v"][0, 0] = -1  # writable, and not aliased with the sender's memory
    assert base[0, -1] != -1


def test_numpy_scalars_arrive_as_python_values():
    out = roundtrip([np.float32(1.5), np.int64(3), np.bool_(True), np.uint8(7), np.complex64(1j)])
    assert out == [1.5, 3, True, 7, 1j]
    assert [type(v) for v in out] == [float, int, bool, int, complex]


@pytest.mark.parametrize(
    "value",
    [
        np.array([object(), 1], dtype=object),
        np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        np.ma.masked_array([1, 2], mask=[0, 1]),
        object(),
        Plain.A,
        lambda: None,
        io.BytesIO(),
        type,
        {1: object()},
    ],
)
def test_unsupported_values_raise_serialization_error(value):
    with pytest.raises(SerializationError, match="cannot be sent") as info:
        codec.encode(value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValidationError)


def test_error_names_the_unsupported_type():
    class Thing:
        pass

    with pytest.raises(SerializationError, match=r"test_rpc_codec.*Thing"):
        codec.encode({"x": [Thing()]})


def test_depth_limit_on_encode():
    value: list = []
    for _ in range(codec.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(SerializationError, match="nested more than"):
        codec.encode(value)
    ok: list = []
    for _ in range(codec.MAX_DEPTH - 1):
        ok = [ok]
    assert codec.decode(codec.encode(ok)) == ok


def test_depth_limit_on_decode_of_extension_nesting():
    value: object = ()
    for _ in range(20):
        value = (value,)
    data = codec.encode(value)
    assert codec.decode(data) == value
    with pytest.raises(ProtocolError, match="nested more than 5"):
        codec.decode(data, max_depth=5)


def _ext_payload(code, inner):
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(inner, use_bin_type=True)))


@pytest.mark.parametrize(
    ("payload", "buffers", "message"),
    [
        (msgpack.packb(msgpack.ExtType(99, b"")), (), "unknown extension type 99"),
        (_ext_payload(codec.EXT_NDARRAY, ["|O8", [1], b"\x00" * 8]), (), "not accepted"),
        (_ext_payload(codec.EXT_NDARRAY, ["<f8", [2], b"\x00" * 8]), (), "does not match"),
        (_ext_payload(codec.EXT_NDARRAY, ["<f8", [-1], b""]), (), "shape"),
        (_ext_payload(codec.EXT_NDARRAY, ["<f8", [1] * 40, b"\x00" * 8]), (), "shape"),
        (_ext_payload(codec.EXT_NDARRAY, ["V8", [1], b"\x00" * 8]), (), "not accepted"),
        (_ext_payload(codec.EXT_NDARRAY, ["<f8", [1]]), (), "malformed numpy"),
        (_ext_payload(codec.EXT_OOB_BYTES, 0), (), "not sent"),
        (_ext_payload(codec.EXT_OOB_BYTES, "x"), (), "not sent"),
        (msgpack.packb([1]), ([b"x"],), "sent but not used"),
        (
            msgpack.packb([msgpack.ExtType(codec.EXT_OOB_BYTES, b"\x00")] * 2, use_bin_type=True),
            ([b"x"],),
            "twice",
        ),
        (_ext_payload(codec.EXT_SET, [[1]]), (), "unhashable"),
        (_ext_payload(codec.EXT_PAIRS, [1]), (), "odd number"),
        (_ext_payload(codec.EXT_PAIRS, [[1], 2]), (), "unhashable"),
        (_ext_payload(codec.EXT_STRUCTDICT, [1]), (), "StructDict"),
        (_ext_payload(codec.EXT_DATETIME, "yesterday"), (), "Invalid isoformat"),
        (_ext_payload(codec.EXT_DATETIME, "x" * 100), (), "date/time"),
        (_ext_payload(codec.EXT_TIMEDELTA, [1, 2]), (), "timedelta"),
        (_ext_payload(codec.EXT_TIMEDELTA, [10**12, 0, 0]), (), "OverflowError"),
        (_ext_payload(codec.EXT_COMPLEX, ["a", 1]), (), "complex"),
        (msgpack.packb(msgpack.ExtType(codec.EXT_BIGINT, b"")), (), "integer"),
        (_ext_payload(codec.EXT_DICOM, "text"), (), "not sent"),
        (_ext_payload(codec.EXT_TUPLE, 5), (), "container"),
        (b"\xc1", (), "malformed value"),
        (b"\x92\x01", (), "malformed value"),
        (b"\x01\x02", (), "malformed value"),
        (b"\xa2\xff\xfe", (), "malformed value"),
        (b"\x91" * 5000 + b"\xc0", (), "malformed value"),
    ],
)
def test_malformed_payloads_raise_protocol_error(payload, buffers, message):
    with pytest.raises(ProtocolError, match=message):
        codec.decode_parts(payload, buffers)


def test_a_buffer_cannot_be_used_twice_to_amplify_memory():
    # Two arrays referring to the same 1 MB buffer would double what the peer sent.
    ref = msgpack.ExtType(codec.EXT_NDARRAY, msgpack.packb(["|u1", [1 << 20], 0]))
    payload = msgpack.packb([ref, ref])
    with pytest.raises(ProtocolError, match="twice"):
        codec.decode_parts(payload, [[bytes(1 << 20)]])


def test_declared_huge_lengths_are_rejected_without_allocating():
    # A bin32 header claiming 4 GiB followed by 3 bytes, and an array header claiming 2**32 items.
    for data in (b"\xc6\xff\xff\xff\xff" + b"abc", b"\xdd\xff\xff\xff\xff\x01"):
        started = time.perf_counter()
        with pytest.raises(ProtocolError):
            codec.decode_parts(data)
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05",
        b"\x05abc",
        msgpack.packb(3) + msgpack.packb([b"", [5]])[:3],
        msgpack.packb(4) + msgpack.packb([b"\xc0", [5]]) + b"abc",  # sizes do not add up
        msgpack.packb(4) + msgpack.packb([b"\xc0", [0]]),  # zero-length buffer
        msgpack.packb(3) + msgpack.packb(["x", []]),
        msgpack.packb(-1),
    ],
)
def test_decode_rejects_malformed_containers(data):
    with pytest.raises(ProtocolError):
        codec.decode(data)


def test_decode_rejects_oversized_input():
    with pytest.raises(ProtocolError, match="larger than"):
        codec.decode(codec.encode(b"x" * 100), max_size=50)


def test_decode_accepts_bytearray_and_memoryview():
    data = codec.encode({"a": (1, b"b" * 70_000)})
    assert codec.decode(bytearray(data)) == codec.decode(memoryview(data)) == codec.decode(data)


def test_msgpack_timestamp_from_a_foreign_peer_becomes_a_datetime():
    out = codec.decode_parts(b"\xd6\xff\x00\x00\x00\x00")
    assert out == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _dataset():
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Person"
    ds.ImagePositionPatient = [1.5, -2.0, 3.25]
    ds.Rows, ds.Columns = 64, 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(64 * 64, dtype=np.uint16).tobytes()
    return ds


def test_pydicom_dataset_round_trips_with_file_meta():
    ds = _dataset()
    out = roundtrip({"ds": ds})["ds"]
    assert out == ds
    assert out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    np.testing.assert_array_equal(out.pixel_array, np.arange(64 * 64).reshape(64, 64))


def test_pydicom_dataset_without_file_meta_round_trips():
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName = "No^Meta"
    ds.Rows = 3
    assert roundtrip(ds) == ds


def test_pydicom_values_arrive_as_plain_values():
    ds = _dataset()
    out = roundtrip([ds.PatientName, ds.ImagePositionPatient, ds.Rows])
    assert out == ["Test^Person", [1.5, -2.0, 3.25], 64]
    assert [type(v) for v in out] == [str, list, int]


def test_real_scanner_dicom_round_trips_out_of_band(sample_dicom_dir):
    import pydicom

    ds = pydicom.dcmread(sample_dicom_dir / "001_000013_000000.dcm")
    payload, buffers = codec.encode_parts(ds)
    # the header, then the pixel data's own bytes object: neither side copies the pixels
    assert len(buffers) == 2 and len(payload) < 100 and buffers[1].obj is ds.PixelData
    received = [[bytes(buffer)] for buffer in buffers]
    out = codec.decode_parts(payload, received)
    assert out == ds and out.PixelData == ds.PixelData and out.PixelData is received[1][0]
    assert out == pydicom.dcmread(io.BytesIO(bytes(buffers[0]) + ds.PixelData))


def test_a_split_dicom_value_that_does_not_fit_is_read_by_dcmread_or_refused(sample_dicom_dir):
    import pydicom

    ds = pydicom.dcmread(sample_dicom_dir / "001_000013_000000.dcm")
    payload, buffers = codec.encode_parts(ds)
    head, pixels = bytes(buffers[0]), bytes(buffers[1])
    # the pixels cut apart elsewhere: not what the fast path takes, dcmread reads the join
    moved = [[head + pixels[:10]], [pixels[10:]]]
    assert codec.decode_parts(payload, moved) == ds
    with pytest.raises(ProtocolError, match="malformed DICOM value"):
        bad = msgpack.ExtType(codec.EXT_DICOM, msgpack.packb([b"a", b"b", b"c"]))
        codec.decode_parts(msgpack.packb(bad), [])


def test_parsed_dataset_is_written_without_dcmwrite_to_the_same_bytes(monkeypatch):
    from rtcloud.imaging.dicom import read_dicom_bytes, write_dicom_bytes

    data = write_dicom_bytes(_dataset())
    ds = read_dicom_bytes(data)
    ds.PatientName = "Changed^Name"
    expected = write_dicom_bytes(ds)
    patch_dcmwrite_to_fail(monkeypatch)
    assert b"".join(codec._dicom_pieces(ds)) == expected
    out = roundtrip(ds)
    assert out == ds and out.file_meta == ds.file_meta and out.PatientName == "Changed^Name"


def test_anonymized_scanner_dicom_is_written_fast_and_round_trips(sample_dicom_dir, monkeypatch):
    import pydicom

    from rtcloud.imaging.dicom import anonymize_dicom, read_dicom_bytes

    data = (sample_dicom_dir / "001_000013_000000.dcm").read_bytes()
    ds = anonymize_dicom(read_dicom_bytes(data))
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    with monkeypatch.context() as patch:
        patch_dcmwrite_to_fail(patch)
        payload, buffers = codec.encode_parts(ds)
    assert len(buffers) == 2 and b"".join(buffers) == buffer.getvalue()
    out = codec.decode_parts(payload, [[bytes(buffer)] for buffer in buffers])
    expected = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert out == expected and out.file_meta == expected.file_meta
    assert out.PixelData == ds.PixelData and out.SOPInstanceUID == ds.SOPInstanceUID


def test_large_bytes_travel_as_they_are_without_a_per_byte_pass():
    data = os.urandom(100 * 1024 * 1024)
    encoded = codec.encode(data)
    assert len(encoded) < len(data) + 64  # raw msgpack bin: no base64, no copy per chunk
    best = float("inf")
    for _ in range(2):  # the first run pays for fresh memory pages
        started = time.perf_counter()
        out = codec.decode(codec.encode(data))
        best = min(best, time.perf_counter() - started)
    assert out == data
    # Speed is measured by benchmarks/bench_rpc_protocol.py (1 GB/s and more when idle). This
    # bound only catches a per-byte Python loop (a few MB/s), even on a loaded machine.
    assert len(data) / best > 3e7, f"{len(data) / best / 1e6:.0f} MB/s"


def test_encoded_values_pass_through_unchanged():
    big = bytes(range(256)) * 1000
    value = {"a": [1, big, np.arange(12, dtype=np.int32)], "b": "x"}
    of = codec.Encoded.of(value)
    assert codec.encode(of) == codec.encode(value) and codec.Encoded.of(of) is of
    assert any(pieces[0] == big for pieces in of.buffers)  # referenced, not copied in
    payload, buffers = codec.encode_parts(value)
    kept = codec.Encoded(payload, [[bytes(b[:10]), bytes(b[10:])] for b in buffers])
    assert kept.nbytes == len(payload) + sum(len(b) for b in buffers)
    assert "Encoded value" in repr(kept)
    for again in (codec.decode(codec.encode(kept)), kept.decode()):
        assert again["a"][1] == big and again["a"][2].tolist() == list(range(12))
    payload2, buffers2 = codec.encode_parts(kept)
    assert payload2 == payload and [bytes(b) for b in buffers2] == [bytes(b) for b in buffers]
