"""The Siemens CSA image header: the few values volumes need, read in one pass.

Siemens VB/VE images carry a private "CSA" header (element (0029,xx10) of the block named
``SIEMENS CSA HEADER``) that holds, among some hundred tags, the slice count of a mosaic,
the slice normal, each slice's acquisition time and the phase-encoding polarity. nibabel's
reader decodes every tag of it into Python values; this one walks the same layout (the
"SV10" format: a header, then per tag a 64-byte name, VM, VR, syngo data type, item count,
and per item four length words and the padded text) with ``struct`` and returns the text of
every tag, so reading it costs a small fraction of a volume's time. It accepts the SV10
format only; anything else gives an empty dict (callers then fall back to nibabel).

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["csa_image_tags", "first_number", "numbers"]

_TAG = struct.Struct("<64si4s3i")
_ITEM = struct.Struct("<4i")
_MAX_TAGS = 1024
_MAX_ITEMS = 1024


def _csa_bytes(ds: Dataset) -> bytes | None:
    """The CSA image header's bytes: (0029,xx10) of the ``SIEMENS CSA HEADER`` block."""
    creators = [tag for tag in ds._dict if 0x00290010 <= tag <= 0x002900FF]
    for tag in creators:
        offset = tag & 0xFF
        creator = ds[tag]
        value = creator.value
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if text.strip(" \0").upper() == "SIEMENS CSA HEADER":
            element = ds.get((0x0029, (offset << 8) | 0x10))
            data = element.value if element is not None else None
            return data if isinstance(data, bytes) else None
    return None


def csa_image_tags(ds: Dataset) -> dict[str, list[str]]:
    """``{tag name: [item texts]}`` of the CSA image header (empty when there is none, or it
    is not in the SV10 format)."""
    data = _csa_bytes(ds)
    if not data or not data.startswith(b"SV10") or len(data) < 16:
        return {}
    try:
        count = struct.unpack_from("<I", data, 8)[0]
        if count > _MAX_TAGS:
            return {}
        pos = 16
        tags: dict[str, list[str]] = {}
        for _ in range(count):
            name, vm, _vr, _syngodt, n_items, _check = _TAG.unpack_from(data, pos)
            pos += _TAG.size
            if n_items > _MAX_ITEMS:
                return {}
            items: list[str] = []
            for _ in range(n_items):
                length = _ITEM.unpack_from(data, pos)[1]
                pos += _ITEM.size
                if length < 0 or pos + length > len(data):
                    return {}
                if length:
                    items.append(data[pos : pos + length].split(b"\0", 1)[0].decode("latin-1"))
                pos += (length + 3) // 4 * 4
            key = name.split(b"\0", 1)[0].decode("latin-1")
            tags[key] = items[: vm if vm > 0 else len(items)]
        return tags
    except (struct.error, UnicodeDecodeError):
        return {}


def numbers(items: list[str] | None) -> list[float]:
    """The items of a tag as numbers (empty when any is not one)."""
    out: list[float] = []
    for item in items or []:
        try:
            out.append(float(item))
        except ValueError:
            return []
    return out


def first_number(tags: dict[str, Any], name: str) -> float | None:
    values = numbers(tags.get(name))
    return values[0] if values else None


def numbering_reversed(tags: dict[str, Any]) -> bool:
    """Whether a mosaic's slices were numbered in reverse (the scanner's System >
    Miscellaneous > Image numbering setting): its first tile's CSA ProtocolSliceNumber is
    above 1. dcm2niix then reverses the slice axis (voxels, affine and slice times)."""
    return (first_number(tags, "ProtocolSliceNumber") or 0) > 1
