"""The fast DICOM reader gives what dcmread gives: same elements, items, encodings and bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from dicom_cases import identifying_dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian

from rtcloud.imaging import dicom_read
from rtcloud.imaging.dicom import read_dicom_bytes
from rtcloud.imaging.dicom_read import decode_sequence, read_dicom_fast
from rtcloud.rpc.codec import decode, encode

#: Attributes set on first use (pydicom notes the pixel representation when an element of a
#: sequence is first looked up), or objects that are equal only by identity.
_LAZY = {"_dict", "_pixel_rep", "buffer", "file_meta", "_pixel_array"}


def to_bytes(ds: Dataset) -> bytes:
    """The bytes dcmwrite writes: a Part 10 file (with a preamble) unless told otherwise."""
    if not hasattr(ds, "preamble"):
        ds.preamble = b"\0" * 128
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def state(obj: Dataset, *, top: bool = True) -> dict[str, object]:
    skip = _LAZY if top else _LAZY | {"file_tell", "seq_item_tell"}
    return {k: v for k, v in vars(obj).items() if k not in skip}


def assert_same_dataset(fast: Dataset, slow: Dataset, *, top: bool = True) -> None:
    """Element by element, item by item, with every attribute a reader sets.

    Inside items, pydicom counts an element's ``file_tell`` (and that of items nested
    deeper) from the start of the sequence when it decodes a sequence on first use, and from
    the start of the file when its reader decodes it at once; nothing reads these offsets
    unless reading was deferred, which it is not here.
    """
    assert state(fast, top=top) == state(slow, top=top)
    assert list(fast.keys()) == list(slow.keys())
    for tag in slow.keys():
        a, b = fast[tag], slow[tag]
        assert (a.tag, a.VR, a.is_undefined_length) == (b.tag, b.VR, b.is_undefined_length)
        if b.VR == "SQ":
            # (the element's is_undefined_length is what pydicom uses; the copy dcmread also
            # leaves on the Sequence object, which nothing reads, is not made on first use)
            assert isinstance(a.value, Sequence)
            assert len(a.value) == len(b.value)
            for item_a, item_b in zip(a.value, b.value, strict=True):
                assert_same_dataset(item_a, item_b, top=False)
        else:
            assert a.value == b.value, tag
            if top:
                assert a.file_tell == b.file_tell


def check_same_as_dcmread(data: bytes) -> Dataset:
    fast = read_dicom_fast(data)
    assert fast is not None, "the fast path refused these bytes"
    slow = pydicom.dcmread(io.BytesIO(data))
    assert type(fast) is type(slow)
    assert fast.preamble == slow.preamble
    assert fast.buffer.getvalue() == data
    assert_same_dataset(fast.file_meta, slow.file_meta)
    assert_same_dataset(fast, slow)
    assert to_bytes(fast) == to_bytes(slow)
    assert fast == slow
    return fast


def sample_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        pytest.skip(f"no sample DICOM files in {folder}")
    return files


def test_real_siemens_volumes_read_as_dcmread_reads_them(sample_dicom_dir):
    for path in sample_files(sample_dicom_dir):
        ds = check_same_as_dcmread(path.read_bytes())
        # sequences stay undecoded until used, and then hold what dcmread read
        assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID


def test_nested_and_undefined_length_sequences_private_and_charsets():
    for charset in ("ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"]):
        ds = identifying_dataset(name="Yamada^Tarou", charset=charset)
        data = to_bytes(ds)
        check_same_as_dcmread(data)
        # the same with every sequence and item written with undefined length
        parsed = pydicom.dcmread(io.BytesIO(data))
        stack = [parsed]
        while stack:
            item = stack.pop()
            for element in item:
                if element.VR == "SQ":
                    element.is_undefined_length = True
                    for sub in element.value:
                        sub.is_undefined_length_sequence_item = True
                        stack.append(sub)
        undefined = to_bytes(parsed)
        assert b"\xfe\xff\xdd\xe0" in undefined
        check_same_as_dcmread(undefined)


def test_empty_sequence_and_empty_values():
    ds = identifying_dataset()
    ds.ReferencedImageSequence = []
    ds.ImageComments = ""
    check_same_as_dcmread(to_bytes(ds))


@pytest.mark.parametrize(
    "case",
    [
        "implicit",
        "big endian",
        "no preamble",
        "cut in the pixel data",
        "cut in a header",
        "bad VR",
    ],
)
def test_other_bytes_are_left_to_dcmread(case):
    ds = identifying_dataset(implicit=case == "implicit")
    if case == "big endian":
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.preamble = b"\0" * 128
        buffer = io.BytesIO()
        ds.save_as(buffer, implicit_vr=False, little_endian=False, enforce_file_format=False)
        data = buffer.getvalue()
    else:
        data = to_bytes(ds)
    if case == "no preamble":
        data = data[132:]
    elif case == "cut in the pixel data":
        data = data[:-7]
    elif case == "cut in a header":
        data = data[: data.index(b"\xe0\x7f\x10\x00") + 5]
    elif case == "bad VR":
        at = data.index(b"\xe0\x7f\x10\x00")
        data = data[: at + 4] + b"ZZ" + data[at + 6 :]
    assert read_dicom_fast(data) is None
    # and the callers still read what dcmread reads, or say why they cannot
    if case in ("implicit", "big endian"):
        assert read_dicom_bytes(data) == pydicom.dcmread(io.BytesIO(data))


def test_the_script_side_decoder_and_the_service_parse_use_it(sample_dicom_dir, monkeypatch):
    data = sample_files(sample_dicom_dir)[0].read_bytes()
    sent = encode(pydicom.dcmread(io.BytesIO(data)))

    def refuse(*args, **kwargs):
        raise AssertionError("dcmread was called")

    monkeypatch.setattr(pydicom, "dcmread", refuse)
    received = decode(sent)
    parsed = read_dicom_bytes(data)
    monkeypatch.undo()
    reference = pydicom.dcmread(io.BytesIO(data))
    assert received == reference
    assert parsed == reference


def test_refuses_before_pydicom_3(monkeypatch):
    data = to_bytes(identifying_dataset())
    monkeypatch.setattr(dicom_read, "_PYDICOM_3", False)
    assert read_dicom_fast(data) is None


def decode_all(ds: Dataset, fast: bool) -> None:
    """Decode every sequence, at every depth, fast or as pydicom does on first use."""
    for tag in list(ds.keys()):
        raw = ds._dict[tag]
        if raw.VR == "SQ":
            element = decode_sequence(ds, tag) if fast else ds[tag]
            for item in element.value:
                decode_all(item, fast)


def sequence_cases(sample_dicom_dir: Path) -> list[bytes]:
    cases = [p.read_bytes() for p in sample_files(sample_dicom_dir)[:3]]
    for charset in ("ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"]):
        ds = identifying_dataset(name="Yamada^Tarou", charset=charset)
        ds.ImageComments = "an empty item, and items of undefined length, below"
        cases.append(to_bytes(ds))
        parsed = pydicom.dcmread(io.BytesIO(cases[-1]))
        for element in parsed.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
        cases.append(to_bytes(parsed))
    return cases


def test_sequences_decode_fast_into_the_items_pydicom_makes(sample_dicom_dir, monkeypatch):
    for data in sequence_cases(sample_dicom_dir):
        fast, lazy = read_dicom_fast(data), read_dicom_fast(data)
        assert fast is not None and lazy is not None
        decode_all(lazy, fast=False)
        with monkeypatch.context() as patch:  # pydicom's own item reader is not used
            patch.setattr(pydicom.filereader, "read_sequence_item", None)
            decode_all(fast, fast=True)
        # the same as pydicom decoding the same raw sequences on first use, offsets and all
        assert_same_dataset(fast, lazy)
        for element in fast:
            if element.VR == "SQ":
                pairs = zip(element.value, lazy[element.tag].value, strict=True)
                for item_fast, item_lazy in pairs:
                    assert state(item_fast) == state(item_lazy)
        # and the same as dcmread, which decodes every sequence at once
        eager = pydicom.dcmread(io.BytesIO(data))
        assert_same_dataset(fast, eager)
        for element in eager:
            if element.VR == "SQ":
                pairs = zip(fast[element.tag].value, element.value, strict=True)
                for item_fast, item_eager in pairs:
                    assert item_fast.seq_item_tell == item_eager.seq_item_tell
                    assert item_fast.file_tell == item_eager.file_tell
        assert to_bytes(fast) == to_bytes(eager)


def test_sequences_pydicom_must_decode_are_left_to_it(sample_dicom_dir, monkeypatch):
    data = sample_files(sample_dicom_dir)[0].read_bytes()
    ds = read_dicom_fast(data)
    assert ds is not None
    tag = BaseTag(0x00081140)  # ReferencedImageSequence, still raw
    assert type(ds._dict[tag]) is RawDataElement
    calls = []
    real = pydicom.values.converters["SQ"]

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    # a converter of one's own is honoured: pydicom decodes, and calls it
    monkeypatch.setitem(pydicom.values.converters, "SQ", counting)
    element = decode_sequence(ds, tag)
    assert calls and len(element.value) == 3
