"""Anonymization of DICOM datasets: what identifies a person leaves before any byte does.

Anonymization removes what identifies a person (names, IDs, birth date, age, sex, size,
weight, addresses, phone numbers, institution, physicians and operators, dates, free-text
comments, device serial numbers), in nested sequences and the file meta too, and keeps what
analysis needs: geometry, timing (times of day, such as ``AcquisitionTime`` for TR timing),
pixel data and the Siemens CSA headers. Every date (DA) is emptied; a date and time (DT,
such as the per-frame ``FrameAcquisitionDateTime`` of enhanced images) keeps its time of
day, and its date becomes 1900-01-01 plus its days after the study date, so that intervals
between frames stay right. Instance UIDs (which embed serial numbers and dates), private
ones included, get deterministic same-length stand-ins, and copies of UIDs and identifying
values inside private elements are overwritten in place (same length, so binary headers
keep their shape).

It is fast (a fraction of a millisecond per volume) because it touches only the elements it
must: it walks the parsed elements by tag without decoding the ones it leaves alone, decodes
the values it needs straight from their bytes when they are plain ASCII (anything else goes
through pydicom), and searches private elements for all identifying values at once, sharing
the searches of common prefixes. A large private element that repeats from volume to volume
(the Siemens CSA series header) is searched once per series: a small, bounded memo keyed on
its exact bytes remembers which values occur in it.

Pure module: no threads, sockets or event loops.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterable
from typing import Any, AnyStr, Generic

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from rtcloud.imaging.dicom_read import decode_sequence, public_vr

__all__ = ["ATTRIBUTES_TO_ANONYMIZE", "anonymize_dicom", "shift_datetime"]


#: Identifying attributes (DICOM keywords) that anonymization empties or removes.
ATTRIBUTES_TO_ANONYMIZE: tuple[str, ...] = (
    # the person
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "MilitaryRank",
    "BranchOfService",
    "EthnicGroup",
    "Occupation",
    "PatientReligiousPreference",
    "MedicalRecordLocator",
    "PatientInsurancePlanCodeSequence",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientComments",
    "AdditionalPatientHistory",
    "PregnancyStatus",
    "SmokingStatus",
    "MedicalAlerts",
    "Allergies",
    "PatientState",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientSpeciesDescription",
    # people and places around the study
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
    "OperatorsName",
    "OperatorIdentificationSequence",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    "AccessionNumber",
    "StudyID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "AdmissionID",
    "IssuerOfAdmissionID",
    # dates (acquisition *time* is kept for TR timing)
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepEndDate",
    "AcquisitionDateTime",
    "StudyTime",
    "SeriesTime",
    "ContentTime",
    "InstanceCreationTime",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepEndTime",
    # free text
    "StudyDescription",
    "ImageComments",
    "StudyComments",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "RequestAttributesSequence",
    "TextComments",
    "FrameComments",
    "InterpretationText",
    "ReasonForStudy",
    "RequestedProcedureComments",
)


def _tag_of(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - guarded by a test
        raise ValueError(f"unknown DICOM keyword {keyword!r} in ATTRIBUTES_TO_ANONYMIZE")
    return int(tag)


_ANON_TAGS = frozenset(_tag_of(keyword) for keyword in ATTRIBUTES_TO_ANONYMIZE)
_DATE = re.compile(r"(19|20)\d{6}")
#: The date at the start of a DT value: YYYY, YYYYMM or YYYYMMDD.
_DT_DATE = re.compile(r"(\d{4})(\d{2})?(\d{2})?")
#: Where a DT value's date goes: this day plus the value's days after the reference date.
_DT_BASE = dt.date(1900, 1, 1)
#: Dates that date-and-time values count from, best first (read at the top level).
_REFERENCE_DATES = tuple(
    _tag_of(keyword) for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
)


def shift_datetime(value: str, reference: dt.date | None) -> str:
    """A DT value with its date moved to 1900-01-01 plus its days after ``reference`` (its
    time of day and UTC offset kept); a value without a whole date gets 1900 (and 01)."""
    text = value.strip()
    found = _DT_DATE.match(text)
    if found is None:
        return "" if any(c.isdigit() for c in text) else value
    year, month, day = found.groups()
    rest = text[found.end() :]
    if month is None or day is None:
        return ("1900" if month is None else "190001") + rest
    try:
        when = dt.date(int(year), int(month), int(day))
    except ValueError:
        return "19000101" + rest
    offset = (when - reference).days if reference is not None else 0
    try:
        shifted = _DT_BASE + dt.timedelta(days=offset)
    except OverflowError:
        shifted = _DT_BASE
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}{rest}"


# What anonymize_dicom does is what the plain version does (walk every element of every
# dataset, decode it, look up its keyword, overwrite the UIDs and identifying values found
# in private elements); tests/imaging/test_anonymize.py holds that plain version and checks
# that both give the same datasets and bytes. It is fast because:
#
# - It goes through ``Dataset._dict`` by tag and decodes an element only when it needs its
#   value, by hand when that is exact: the element is still raw, its VR explicit or known
#   from the dictionary, and its bytes plain ASCII without ISO 2022 escapes (so every DICOM
#   character set decodes them alike). Anything else (other bytes, VR UN, sequences,
#   elements pydicom already decoded) takes the pydicom path, as before.
# - Elements it changes are written back as raw elements with the new bytes (same length
#   for UIDs and private elements, empty for identifying attributes): pydicom writes them out
#   as they are and decodes them like any other raw element. Elements it leaves alone are
#   never decoded or re-encoded.
# - UID registry look-ups, stand-in UIDs and search tries are cached.
# - Private values are searched for all UIDs and identifying values at once with a trie (a
#   shared prefix is searched once; a branch whose prefix is absent is skipped), and a large
#   private value that repeats from volume to volume (the CSA series header) is searched
#   once per series (see _Memo). Replacement is simultaneous, leftmost-longest first, so the
#   stand-ins written in are never searched again.
#
# Private values are searched for the UTF-8 and the Latin-1 bytes of each identifying value
# (the plain version of old: Latin-1 only), and multi-valued private text and person names
# are scrubbed too (the plain version of old skipped them).

_RawOrElement = DataElement | RawDataElement

#: VRs whose pydicom value is the raw bytes themselves.
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
#: VRs whose values are text (after decoding); LT/ST/UT/UR hold a single value.
_TEXT_VRS = frozenset(
    {
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UR",
        "UT",
    }
)
_SINGLE_VALUE_VRS = frozenset({"LT", "ST", "UR", "UT"})
#: Text VRs an empty raw element decodes to the same value as an element set to "".
_EMPTY_RAW_VRS = _TEXT_VRS - {"DS", "IS"}
#: Numeric VRs: their values cannot hold copies of names or UIDs.
_NUMBER_VRS = frozenset({"AT", "DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV"})
_MIN_ANCHOR = 4
_SMALL_VALUE = 12


@functools.lru_cache(maxsize=8192)
def _same_length_uid(uid: str) -> str:
    """A deterministic stand-in for ``uid`` with the same length (so binary headers keep shape)."""
    digits = str(int.from_bytes(hashlib.sha256(uid.encode("ascii", "replace")).digest(), "big"))
    digits = digits.lstrip("0") * 2
    return ("2.25." + digits)[: len(uid)]


@functools.lru_cache(maxsize=8192)
def _is_registered_uid(value: str) -> bool:
    return UID(value).name != value


def _string_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _is_plain(value: bytes) -> bool:
    """ASCII without ISO 2022 escapes: decodes to the same text in every DICOM character set."""
    return value.isascii() and b"\x1b" not in value


def _prefix_len(a: AnyStr, b: AnyStr) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Node(Generic[AnyStr]):
    """A node of a search trie: ``anchor`` (a shared prefix of 4 or more, or None: nothing to
    search at this level), the needle equal to it if any, and the longer needles below.
    Nodes are never changed once built, so tries of successive volumes share them."""

    __slots__ = ("anchor", "children", "needle")

    def __init__(
        self, anchor: AnyStr | None, needle: AnyStr | None, children: tuple[_Node[AnyStr], ...]
    ) -> None:
        self.anchor: AnyStr | None = anchor
        self.needle: AnyStr | None = needle
        self.children: tuple[_Node[AnyStr], ...] = children


@functools.lru_cache(maxsize=1024)
def _trie_nodes(needles: tuple[Any, ...]) -> tuple[_Node[Any], ...]:
    """Nodes for sorted, distinct needles (str or bytes). Cached: the volumes of a series
    share most of their needles, so most subtrees are built once per series."""
    first = needles[0]
    if len(needles) == 1:
        return (_Node(first, first, ()),)
    shared = _prefix_len(first, needles[-1])
    needle = None
    start = 0
    if len(first) == shared:  # the first needle is the shared prefix itself
        needle = first
        start = 1
    children: list[_Node[Any]] = []
    count = len(needles)
    while start < count:
        key = needles[start][shared]
        end = start + 1
        while end < count and needles[end][shared] == key:
            end += 1
        children.extend(_trie_nodes(needles[start:end]))
        start = end
    anchor = first[:shared] if shared >= _MIN_ANCHOR else None
    if anchor is None and needle is None:
        return tuple(children)
    return (_Node(anchor, needle, tuple(children)),)


class _Trie(Generic[AnyStr]):
    """Finds which of many needles occur in a value with few searches.

    A group of needles sharing a prefix of 4 or more is skipped when that prefix does not
    occur, so the values of one family (the UIDs of a scanner) cost one search.
    """

    def __init__(self, needles: Iterable[AnyStr]) -> None:
        ordered = tuple(sorted(set(needles)))
        self.roots: tuple[_Node[AnyStr], ...] = _trie_nodes(ordered) if ordered else ()
        self.shortest = min(map(len, ordered)) if ordered else 0

    def present(self, data: AnyStr, known: dict[AnyStr, bool] | None = None) -> list[AnyStr]:
        """The needles that occur in ``data``.

        ``known`` remembers, for this very ``data``, whether a needle or prefix occurs in it:
        it is consulted before searching and completed after.
        """
        found: list[AnyStr] = []
        if not self.roots or len(data) < self.shortest:
            return found
        stack = list(self.roots)
        while stack:
            node = stack.pop()
            anchor = node.anchor
            probe = anchor if anchor is not None else node.needle
            if probe is not None:
                if known is None:
                    hit = probe in data
                else:
                    cached = known.get(probe)
                    hit = known[probe] = probe in data if cached is None else cached
                if hit:
                    if node.needle is not None:
                        found.append(node.needle)
                elif anchor is not None:
                    continue  # no needle below this prefix occurs
            stack.extend(node.children)
        return found


def _replace_present(
    data: AnyStr, present: Iterable[AnyStr], table: dict[AnyStr, AnyStr]
) -> AnyStr:
    """Replace every occurrence of the ``present`` needles at once, leftmost-longest first."""
    hits: list[tuple[int, int, AnyStr]] = []
    for needle in present:
        at = data.find(needle)
        while at != -1:
            hits.append((at, -len(needle), needle))
            at = data.find(needle, at + 1)
    hits.sort()
    pieces: list[AnyStr] = []
    position = 0
    for at, negative_length, needle in hits:
        if at < position:  # overlaps a replacement already made
            continue
        pieces.append(data[position:at])
        pieces.append(table[needle])
        position = at - negative_length
    pieces.append(data[position:])
    return data[:0].join(pieces)


class _Memo:
    """What is known about one large private value: which needles occur, and results."""

    __slots__ = ("data", "present", "results")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.present: dict[bytes, bool] = {}
        self.results: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}


_MEMO_MIN_SIZE = 32 * 1024
_MEMO_MAX_SIZE = 4 * 1024 * 1024
_MEMO_SLOTS = 4
_MEMO_MAX_NEEDLES = 8192
_MEMO_MAX_RESULTS = 2
#: Most recently used first. Plain list operations only: safe when several threads
#: anonymize at once (a race can only cost a repeated search, never a wrong result).
_MEMOS: list[_Memo] = []


def _memo_for(data: bytes) -> _Memo:
    size = len(data)
    for memo in list(_MEMOS):
        if len(memo.data) == size and memo.data == data:
            if _MEMOS and _MEMOS[0] is not memo:
                try:
                    _MEMOS.remove(memo)
                except ValueError:
                    pass
                _MEMOS.insert(0, memo)
                del _MEMOS[_MEMO_SLOTS:]
            return memo
    memo = _Memo(data)
    _MEMOS.insert(0, memo)
    del _MEMOS[_MEMO_SLOTS:]
    return memo


class _Needles:
    """The values to overwrite: UIDs (with their stand-ins) and identifying values (with Xs)."""

    def __init__(self, uids: dict[str, str], secrets: set[str]) -> None:
        text = {secret: "X" * len(secret) for secret in secrets}
        text.update(uids)  # a value that is both: its stand-in UID wins
        raw: dict[bytes, bytes] = {}
        for secret in secrets:
            encodings = [secret.encode("utf-8")]
            try:
                encodings.append(secret.encode("latin-1"))
            except UnicodeEncodeError:
                pass
            for encoded in encodings:
                raw[encoded] = b"X" * len(encoded)
        for old, new in uids.items():
            raw[old.encode("latin-1", "replace")] = new.encode("ascii")
        self.text = text
        self.raw = raw
        self.raw_trie = _Trie(raw)
        self.raw_lengths = sorted({len(needle) for needle in raw})

    def present(self, value: bytes) -> list[bytes]:
        """The byte needles that occur in ``value``."""
        size = len(value)
        if size > _SMALL_VALUE:
            return self.raw_trie.present(value)
        found: set[bytes] = set()
        for length in self.raw_lengths:  # a short value: look its pieces up
            if length > size:
                break
            for start in range(size - length + 1):
                piece = value[start : start + length]
                if piece in self.raw:
                    found.add(piece)
        return list(found)

    @functools.cached_property
    def text_trie(self) -> _Trie[str]:
        return _Trie(self.text)

    def scrub_text(self, value: str) -> str:
        present = self.text_trie.present(value)
        return _replace_present(value, present, self.text) if present else value

    def scrub_bytes(self, value: bytes) -> bytes:
        """``value`` with every needle overwritten (the same object when none occurs)."""
        size = len(value)
        if size < _MEMO_MIN_SIZE or size > _MEMO_MAX_SIZE:
            present = self.present(value)
            return _replace_present(value, present, self.raw) if present else value
        memo = _memo_for(value)
        known = memo.present
        if len(known) > _MEMO_MAX_NEEDLES:
            known = memo.present = {}
        present = self.raw_trie.present(value, known)
        if not present:
            return value
        present.sort()
        key = tuple((needle, self.raw[needle]) for needle in present)
        result = memo.results.get(key)
        if result is None:
            result = _replace_present(value, present, self.raw)
            if len(memo.results) >= _MEMO_MAX_RESULTS:
                memo.results = {}
            memo.results[key] = result
        return result


class _Plan:
    """What anonymization found in a first pass, to be changed in a second."""

    __slots__ = (
        "datetimes",
        "delete",
        "empty",
        "private",
        "reference",
        "secrets",
        "uid_elements",
        "uids",
    )

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}
        self.secrets: set[str] = set()
        self.delete: list[tuple[Dataset, Any]] = []
        self.empty: list[tuple[Dataset, Any, _RawOrElement]] = []
        self.uid_elements: list[tuple[Dataset, Any, _RawOrElement, list[str]]] = []
        self.private: list[tuple[Dataset, Any, _RawOrElement]] = []
        self.datetimes: list[tuple[Dataset, Any, _RawOrElement, list[str]]] = []
        self.reference: dict[int, str] = {}  # reference date candidates: tag -> value

    def add_uids(self, values: list[str]) -> bool:
        """Note the non-registered UIDs among ``values``; True when there was one."""
        changed = False
        for value in values:
            if len(value) > 8 and not _is_registered_uid(value):
                if value not in self.uids:
                    self.uids[value] = _same_length_uid(value)
                changed = True
        return changed

    def add_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            value = value.strip()
            if len(value) >= 4:
                self.secrets.add(value)

    def add_datetimes(
        self, item: Dataset, tag: Any, elem: _RawOrElement, values: list[str], doomed: bool
    ) -> None:
        """A DT element: its dates are secrets, and (unless doomed) it is shifted later."""
        for value in values:
            found = _DT_DATE.match(value.strip())
            if found is not None and found.group(3) is not None:
                self.secrets.add(found.group(0))
        if not doomed and any(v.strip() for v in values):
            self.datetimes.append((item, tag, elem, values))

    def reference_date(self) -> dt.date | None:
        for tag in _REFERENCE_DATES:
            text = self.reference.get(tag, "").strip()
            if len(text) == 8 and text.isdigit():
                try:
                    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
                except ValueError:
                    continue
        return None


_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
_UID_BYTES = re.compile(rb"[0-9]+(?:\.[0-9]+)+")


def _uids_in_bytes(value: bytes) -> list[str]:
    """The UIDs a private value of unknown type (VR UN: implicit VR, unknown creator) holds
    when it is nothing but UIDs, as a UI value is written; else nothing."""
    if not 8 < len(value) <= 1024:
        return []
    parts = value.rstrip(b"\0 ").split(b"\\")
    if all(_UID_BYTES.fullmatch(part) for part in parts):
        return [part.decode("ascii") for part in parts]
    return []


def _collect(item: Dataset, plan: _Plan, doomed: bool, top: bool = False) -> None:
    """First pass over one dataset: note what to change (``doomed``: inside a deleted sequence,
    so only the values to search for elsewhere are noted; ``top``: the data set itself)."""
    for tag, elem in list(item._dict.items()):
        if type(elem) is RawDataElement:
            value = elem.value
            vr = elem.VR
            if tag >> 16 & 1:  # private
                if vr == "UI" and isinstance(value, bytes):
                    _collect_raw_uid(item, tag, elem, value, plan, doomed)
                    continue
                if (
                    isinstance(value, bytes)
                    and vr is not None
                    and vr != "SQ"
                    and not (
                        vr == "UN"
                        and (elem.length == 0xFFFFFFFF or value.startswith(_ITEM_TAG_LE))
                    )
                ):
                    if vr == "UN":
                        plan.add_uids(_uids_in_bytes(value))
                    if (tag & 0xFFFF) >= 0x1000 and not doomed:
                        plan.private.append((item, tag, elem))
                    continue
                # implicit VR (its VR, UI say, is pydicom's to look up), a sequence, or what
                # pydicom may decode as one: let it
            else:
                if vr is None:
                    vr = public_vr(tag)
                    if vr is None:
                        continue  # not in the dictionary: pydicom decodes it as UN bytes
                if isinstance(value, bytes) and vr != "SQ" and vr != "UN":
                    if vr == "UI":
                        _collect_raw_uid(item, tag, elem, value, plan, doomed)
                        continue
                    if vr == "DA" and top and tag in _REFERENCE_DATES and _is_plain(value):
                        plan.reference[tag] = value.decode("ascii")
                    if tag not in _ANON_TAGS and vr != "DA" and vr != "DT":
                        continue
                    if vr in _TEXT_VRS and _is_plain(value):
                        text = value.decode("ascii")
                        parts = [text] if vr in _SINGLE_VALUE_VRS else text.split("\\")
                        if vr == "DT" and tag not in _ANON_TAGS:
                            plan.add_datetimes(item, tag, elem, parts, doomed)
                            continue
                        plan.add_secrets(part.rstrip("\0 ") for part in parts)
                        if not doomed:
                            plan.empty.append((item, tag, elem))
                        continue
            # let pydicom decode it (a sequence: the same, faster)
            elem = decode_sequence(item, tag) if elem.VR == "SQ" else item[tag]
        assert isinstance(elem, DataElement)
        _collect_element(item, tag, elem, plan, doomed, top)


def _collect_raw_uid(
    item: Dataset, tag: Any, elem: RawDataElement, value: bytes, plan: _Plan, doomed: bool
) -> None:
    anon = tag in _ANON_TAGS
    text = value.decode("latin-1").rstrip("\0 ")  # exactly as pydicom decodes UI
    if text:
        values = text.split("\\")
        if plan.add_uids(values) and not doomed and not anon:
            plan.uid_elements.append((item, tag, elem, values))
    if anon and not doomed:
        plan.empty.append((item, tag, elem))


def _collect_element(
    item: Dataset, tag: Any, elem: DataElement, plan: _Plan, doomed: bool, top: bool = False
) -> None:
    vr = elem.VR
    value = elem.value
    public = not tag >> 16 & 1
    if vr == "DA" and public and top and tag in _REFERENCE_DATES and value:
        plan.reference[tag] = str(value)
    anon = tag in _ANON_TAGS or (vr == "DA" and public)
    if vr == "DT" and public and not anon:
        plan.add_datetimes(item, tag, elem, _string_values(value), doomed)
    elif vr == "SQ":
        if value is not None:
            for sub in value:
                _collect(sub, plan, doomed or anon)
        if anon and not doomed:
            plan.delete.append((item, tag))
    elif vr == "UI" and value:
        values = _string_values(value)
        if plan.add_uids(values) and not doomed and not anon:
            plan.uid_elements.append((item, tag, elem, values))
        if anon and not doomed:
            plan.empty.append((item, tag, elem))
    elif anon:
        plan.add_secrets(_string_values(value))
        if not doomed:
            plan.empty.append((item, tag, elem))
    elif not public:
        if isinstance(value, bytes):
            plan.add_uids(_uids_in_bytes(value))  # copies are overwritten like any other
        if (tag & 0xFFFF) >= 0x1000 and not doomed:
            plan.private.append((item, tag, elem))


def _empty(vr: str) -> Any:
    return None if vr in ("US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW") else ""


def _set_raw(item: Dataset, tag: Any, elem: RawDataElement, value: bytes) -> None:
    # elem._replace(length=..., value=...), twice as fast (tag, VR, length, value come first)
    item._dict[tag] = RawDataElement._make((elem[0], elem[1], len(value), value, *elem[4:]))


def _empty_element(item: Dataset, tag: Any, elem: _RawOrElement) -> None:
    if type(elem) is RawDataElement:
        vr = elem.VR if elem.VR is not None else public_vr(tag)
        if vr in _EMPTY_RAW_VRS:
            _set_raw(item, tag, elem, b"")
            return
        elem = item[tag]
    assert isinstance(elem, DataElement)
    elem.value = _empty(elem.VR)


def _map_uids(
    item: Dataset, tag: Any, elem: _RawOrElement, values: list[str], uids: dict[str, str]
) -> None:
    mapped = [uids.get(value, value) for value in values]
    if type(elem) is RawDataElement:
        data = "\\".join(mapped).encode("latin-1")
        _set_raw(item, tag, elem, data + b"\0" if len(data) % 2 else data)
    else:
        assert isinstance(elem, DataElement)
        elem.value = mapped if len(mapped) > 1 else mapped[0]


def _shift_datetimes(
    item: Dataset, tag: Any, elem: _RawOrElement, values: list[str], reference: dt.date | None
) -> None:
    shifted = [shift_datetime(value, reference) for value in values]
    if type(elem) is RawDataElement:
        data = "\\".join(shifted).encode("ascii")
        _set_raw(item, tag, elem, data + b" " if len(data) % 2 else data)
    else:
        assert isinstance(elem, DataElement)
        elem.value = shifted if len(shifted) > 1 else shifted[0]


def _is_date(value: bytes) -> bool:
    """Whether ASCII ``value`` decodes to a date (as pydicom decodes and strips it)."""
    return _DATE.fullmatch(value.decode("ascii").rstrip("\0 ").strip()) is not None


def _scrub_text_value(text: str, needles: _Needles, blank_dates: bool) -> str:
    scrubbed = needles.scrub_text(text)
    # CSA version fields of Siemens hold the acquisition date: blank dates there too
    if blank_dates and _DATE.fullmatch(scrubbed.rstrip("\0 ").strip()):
        return ""
    return scrubbed


def _scrub_private(item: Dataset, tag: Any, elem: _RawOrElement, needles: _Needles) -> None:
    """Overwrite copies of UIDs and identifying values inside a private element, in place."""
    if type(elem) is RawDataElement:
        value = elem.value
        vr = elem.VR
        assert isinstance(value, bytes)
        if vr in _BYTES_VRS:
            scrubbed = needles.scrub_bytes(value)
            if scrubbed is not value:
                _set_raw(item, tag, elem, scrubbed)
            return
        if vr in _NUMBER_VRS:
            return
        if _is_plain(value):
            # ASCII: every character set decodes it alike, and the needles that can occur in
            # it are the ASCII ones, which stand for the same text: work on the bytes
            present = needles.present(value)
            if not present and not _is_date(value):
                return  # nothing to change, whatever pydicom would decode it as
            if vr in _TEXT_VRS:
                new = _replace_present(value, present, needles.raw) if present else value
                single = vr in _SINGLE_VALUE_VRS or b"\\" not in value
                if single and vr != "PN" and _is_date(new):
                    new = b""
                if new != value:
                    _set_raw(item, tag, elem, new)
                return
        elem = item[tag]  # VR UN, unknown, or non-ASCII text: let pydicom decode it
    assert isinstance(elem, DataElement)
    value = elem.value
    if isinstance(value, bytes):
        scrubbed = needles.scrub_bytes(value)
        if scrubbed is not value:
            elem.value = scrubbed
    elif isinstance(value, str):
        new_text = _scrub_text_value(value, needles, elem.VR != "PN")
        if new_text != value:
            elem.value = new_text
    elif isinstance(value, (list, MultiValue)) and elem.VR in _TEXT_VRS - _NUMBER_VRS:
        old = _string_values(value)
        scrubbed_values = [needles.scrub_text(v) for v in old]
        if scrubbed_values != old:
            elem.value = scrubbed_values
    elif elem.VR == "PN" and value is not None:
        text = str(value)
        new_text = needles.scrub_text(text)
        if new_text != text:
            elem.value = new_text


def anonymize_dicom(ds: Dataset) -> Dataset:
    """Remove identifying attributes (also inside sequences) in place; return the dataset.

    Identifying attributes (:data:`ATTRIBUTES_TO_ANONYMIZE`) and every date (DA) are emptied
    (sequences removed), in nested sequences and the file meta too; a date and time (DT)
    keeps its time of day, its date moved to 1900-01-01 plus its days after the study date
    (see :func:`shift_datetime`); instance UIDs, public and private, which embed scanner
    serial numbers and dates, are replaced by same-length stand-ins that stay consistent
    across the volumes of a series; copies of those values inside private elements are
    overwritten in place (the Siemens CSA headers keep their structure and length), and
    private text elements holding just a date are emptied.
    """
    plan = _Plan()
    _collect(ds, plan, False, top=True)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _collect(meta, plan, False)
    for item, tag in plan.delete:
        if tag in item._dict:
            del item[tag]
    for item, tag, elem in plan.empty:
        _empty_element(item, tag, elem)
    for item, tag, elem, values in plan.uid_elements:
        _map_uids(item, tag, elem, values, plan.uids)
    if plan.datetimes:
        reference = plan.reference_date()
        for item, tag, elem, values in plan.datetimes:
            _shift_datetimes(item, tag, elem, values, reference)
    if plan.private:
        needles = _Needles(plan.uids, plan.secrets)
        for item, tag, elem in plan.private:
            _scrub_private(item, tag, elem, needles)
    return ds
