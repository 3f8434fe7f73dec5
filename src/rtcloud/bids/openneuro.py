"""OpenNeuroCache: OpenNeuro datasets from its public S3 bucket, downloaded once, kept.

OpenNeuro publishes every dataset in the S3 bucket ``openneuro.org``, readable without an
account. This cache lists datasets and subjects, reads a dataset's description and README,
and downloads a dataset (or only the files one run needs: the run's image, sidecars and
events, and the dataset's top-level files) into a cache folder, ``cachePath/dsNNNNNN``, laid
out as the dataset is.

A download is never left half written where a reader looks: each file arrives in
``cachePath/.partial/`` and is renamed into place once its size (and MD5, where S3 gives it)
match; a download cut off midway resumes from where it stopped on the next call. Files
already in the cache with the right size are not fetched again. Progress is shown as a bar
on a terminal, logged every 10 %, and passed to a ``progress`` callback (the project server
shows it on the page's log).

boto3 is an optional dependency: ``pip install "rtcloud[openneuro]"``. The S3 endpoint can
be set with ``RTCLOUD_OPENNEURO_S3_URL`` (tests use a local S3 server) and the cache folder
with ``RTCLOUD_OPENNEURO_CACHE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcloud.bids.common import ENTITY_KEYS
from rtcloud.errors import RequestError, ServiceUnavailableError, ValidationError

__all__ = ["BUCKET", "OpenNeuroCache", "default_cache_path"]

logger = logging.getLogger(__name__)

BUCKET = "openneuro.org"
ENDPOINT_ENV = "RTCLOUD_OPENNEURO_S3_URL"
CACHE_ENV = "RTCLOUD_OPENNEURO_CACHE"
_ACCESSION = re.compile(r"ds\d{6}")
_CHUNK = 1 << 20
#: Top-level files every downloaded run gets (besides inherited sidecars and events).
_TOP_LEVEL = re.compile(
    r"(dataset_description\.json|README.*|CHANGES|LICENSE|participants\.(tsv|json)|"
    r".*_(bold|events|sbref)\.(json|tsv))"
)


def default_cache_path() -> Path:
    """``$RTCLOUD_OPENNEURO_CACHE``, else ``~/.cache/rtcloud/openneuro``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "rtcloud" / "openneuro"


@dataclass(frozen=True)
class _Object:
    key: str
    size: int
    etag: str


def _file_entities(name: str) -> dict[str, str]:
    out = {}
    for piece in name.split(".")[0].split("_"):
        key, sep, value = piece.partition("-")
        if sep and key in ENTITY_KEYS:
            out[ENTITY_KEYS[key]] = value
    return out


def _same(name: str, wanted: Any, found: str) -> bool:
    if name in ("run", "echo"):
        try:
            return int(wanted) == int(found)
        except (TypeError, ValueError):
            pass
    return str(wanted) == found


def _wanted(relative: str, entities: dict[str, Any]) -> bool:
    """Whether a dataset file (path relative to the dataset) belongs to the requested run."""
    parts = relative.split("/")
    if parts[0] in ("derivatives", "sourcedata", "code", "stimuli"):
        return False
    if len(parts) == 1:
        return bool(_TOP_LEVEL.fullmatch(parts[0]))
    if parts[-1].endswith(("_scans.tsv", "_sessions.tsv", "_scans.json", "_sessions.json")):
        return False
    folders = parts[:-1]
    if not folders[-1] == "func" and not (len(folders) <= 2 and parts[-1].endswith(".json")):
        return False
    found = _file_entities(parts[-1])
    for folder in folders:
        found.update(_file_entities(folder))
    for name, value in entities.items():
        if name in found and value is not None and not _same(name, value, found[name]):
            return False
    return True


class _Progress:
    """A byte counter shown as a bar on a terminal, and as a line every 10 % elsewhere."""

    def __init__(self, total: int, label: str, sink: Callable[[str], None] | None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.label = label
        self.sink = sink
        self.tty = sys.stderr is not None and sys.stderr.isatty()
        self._reported = -1

    def add(self, count: int) -> None:
        self.done += count
        percent = min(100, self.done * 100 // self.total)
        if self.tty:
            filled = percent * 30 // 100
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {percent:3d}% {self._mb()}")
            if percent == 100:
                sys.stderr.write("\n")
            sys.stderr.flush()
        decile = percent // 10
        if decile > self._reported:
            self._reported = decile
            line = f"{self.label}: {percent}% ({self._mb()})"
            logger.info("%s", line)
            if self.sink is not None:
                self.sink(line)

    def _mb(self) -> str:
        return f"{self.done / 1e6:.1f} of {self.total / 1e6:.1f} MB"


class OpenNeuroCache:
    """OpenNeuro datasets, downloaded into ``cachePath`` (see the module docstring).

    Args:
        cachePath: the cache folder (default: :func:`default_cache_path`).
        endpoint_url: S3 endpoint (default: ``$RTCLOUD_OPENNEURO_S3_URL``, else AWS).
        bucket: the bucket holding the datasets.
    """

    def __init__(
        self,
        cachePath: str | os.PathLike[str] | None = None,
        *,
        endpoint_url: str | None = None,
        bucket: str = BUCKET,
    ) -> None:
        self.cachePath = Path(cachePath).expanduser() if cachePath else default_cache_path()
        self.cachePath.mkdir(parents=True, exist_ok=True)
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        self.bucket = bucket
        self._client: Any = None
        self._datasets: list[str] | None = None

    def getCachePath(self) -> str:
        return str(self.cachePath)

    def getArchivePath(self, dsAccessionNumber: str) -> str:
        """Where a dataset is (or will be) in the cache."""
        return str(self.cachePath / _check_accession(dsAccessionNumber))

    # ------------------------------------------------------------ S3

    def getS3Client(self) -> Any:
        """An anonymous (unsigned) S3 client."""
        if self._client is None:
            try:
                import boto3
                from botocore import UNSIGNED
                from botocore.config import Config
            except ImportError:
                raise RequestError(
                    "OpenNeuro downloads need boto3: pip install 'rtcloud[openneuro]'"
                ) from None
            config = Config(
                signature_version=UNSIGNED,
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            )
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name="us-east-1", config=config
            )
        return self._client

    def _where(self) -> str:
        return self.endpoint_url or "OpenNeuro's S3 bucket (s3://openneuro.org)"

    def _s3(self, method: str, **kwargs: Any) -> Any:
        """Call an S3 method; network failures become ServiceUnavailableError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.getS3Client(), method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{kwargs.get('Key')} is not on OpenNeuro") from None
            raise RequestError(f"OpenNeuro's S3 refused {method}: {exc}") from None
        except BotoCoreError as exc:
            raise ServiceUnavailableError(
                f"cannot reach {self._where()}: {exc}. Check this computer's network "
                "connection (and proxy), or replay a dataset you already have with "
                "initBidsStream(path, ...)"
            ) from None

    def _prefixes(self, prefix: str) -> list[str]:
        out: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._s3("list_objects_v2", Prefix=prefix, Delimiter="/", **extra)
            for item in page.get("CommonPrefixes", []):
                out.append(item["Prefix"][len(prefix) :].rstrip("/"))
            token = page.get("NextContinuationToken")
            if not token:
                return out

    def _objects(self, prefix: str) -> Iterator[_Object]:
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._s3("list_objects_v2", Prefix=prefix, **extra)
            for item in page.get("Contents", []):
                yield _Object(item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"'))
            token = page.get("NextContinuationToken")
            if not token:
                return

    # ------------------------------------------------------------ what is there

    def getDatasetList(self, refresh: bool = False) -> list[str]:
        """Accession numbers of every dataset (``['ds000001', ...]``), listed once."""
        if self._datasets is None or refresh:
            self._datasets = sorted(p for p in self._prefixes("") if _ACCESSION.fullmatch(p))
        return list(self._datasets)

    def isValidAccessionNumber(self, dsAccessionNumber: str) -> bool:
        """Whether OpenNeuro has a dataset of that accession number."""
        if not isinstance(dsAccessionNumber, str) or not _ACCESSION.fullmatch(dsAccessionNumber):
            return False
        page = self._s3("list_objects_v2", Prefix=dsAccessionNumber + "/", MaxKeys=1)
        return bool(page.get("KeyCount") or page.get("Contents"))

    def _require(self, dsAccessionNumber: str) -> str:
        ds = _check_accession(dsAccessionNumber)
        if not self.isValidAccessionNumber(ds):
            raise ValidationError(
                f"OpenNeuro has no dataset {ds}; look the accession number up on "
                f"https://openneuro.org (it looks like ds000102)"
            )
        return ds

    def getSubjectList(self, dsAccessionNumber: str) -> list[str]:
        """The subject labels of a dataset (``['01', '02', ...]``)."""
        ds = self._require(dsAccessionNumber)
        return sorted(p[4:] for p in self._prefixes(ds + "/") if p.startswith("sub-"))

    def _text(self, key: str) -> str:
        body = self._s3("get_object", Key=key)["Body"]
        try:
            return str(body.read().decode("utf-8", errors="replace"))
        finally:
            body.close()

    def getDescription(self, dsAccessionNumber: str) -> dict[str, Any]:
        """The dataset's ``dataset_description.json``."""
        ds = self._require(dsAccessionNumber)
        value = json.loads(self._text(f"{ds}/dataset_description.json"))
        if not isinstance(value, dict):
            raise RequestError(f"{ds}'s dataset_description.json is not a JSON object")
        return value

    def getReadme(self, dsAccessionNumber: str) -> str | None:
        """The dataset's README text, or None when it has none."""
        ds = self._require(dsAccessionNumber)
        for name in ("README", "README.md", "README.txt", "README.rst"):
            try:
                return self._text(f"{ds}/{name}")
            except FileNotFoundError:
                continue
        return None

    # ------------------------------------------------------------ downloading

    def downloadData(
        self,
        dsAccessionNumber: str,
        downloadWholeDataset: bool = False,
        progress: Callable[[str], None] | None = None,
        **entities: Any,
    ) -> str:
        """Download a dataset, or only what the run named by ``entities`` needs; return the
        dataset's folder in the cache.

        Raises:
            ValidationError: not an accession number, unknown dataset, or no file matches.
            ServiceUnavailableError: OpenNeuro cannot be reached (no network).
            RequestError: a download was cut off (call again: it resumes).
        """
        ds = _check_accession(dsAccessionNumber)
        objects = list(self._objects(ds + "/"))
        if not objects:
            raise ValidationError(
                f"OpenNeuro has no dataset {ds}; look the accession number up on "
                "https://openneuro.org (it looks like ds000102)"
            )
        chosen = [
            o
            for o in objects
            if not o.key.endswith("/")
            and (downloadWholeDataset or _wanted(o.key[len(ds) + 1 :], entities))
        ]
        if not downloadWholeDataset and not any(
            o.key.endswith((".nii", ".nii.gz")) for o in chosen
        ):
            raise ValidationError(
                f"no image of {ds} matches {entities}; its subjects are "
                f"{self.getSubjectList(ds)} (name subject, run and, where needed, task and "
                "session)"
            )
        root = self.cachePath / ds
        for o in chosen:  # before any byte is written
            _inside_dataset(ds, o.key, self._where())
        todo = [o for o in chosen if not _complete(root / o.key[len(ds) + 1 :], o)]
        if todo:
            total = sum(o.size - _partial_size(self._partial(o), o) for o in todo)
            meter = _Progress(total, f"downloading {ds} ({len(todo)} files)", progress)
            for item in todo:
                self._download(item, root / item.key[len(ds) + 1 :], meter)
        return str(root)

    def _partial(self, item: _Object) -> Path:
        return self.cachePath / ".partial" / item.key

    def _download(self, item: _Object, target: Path, meter: _Progress) -> None:
        from botocore.exceptions import BotoCoreError

        partial = self._partial(item)
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = _partial_size(partial, item)
        if have == 0 and partial.exists():
            partial.unlink()
        extra = {"Range": f"bytes={have}-"} if 0 < have < item.size else {}
        if have < item.size:
            response = self._s3("get_object", Key=item.key, **extra)
            body = response["Body"]
            try:
                with open(partial, "ab") as fh:
                    while True:
                        chunk = body.read(_CHUNK)
                        if not chunk:
                            break
                        fh.write(chunk)
                        meter.add(len(chunk))
            except (BotoCoreError, OSError) as exc:
                got = partial.stat().st_size if partial.exists() else 0
                raise RequestError(
                    f"the download of {item.key} was cut off after {got} of {item.size} bytes "
                    f"({exc}); call again to resume where it stopped"
                ) from None
            finally:
                body.close()
        size = partial.stat().st_size
        if size != item.size or not _md5_matches(partial, item.etag):
            partial.unlink()
            raise RequestError(
                f"{item.key} arrived damaged ({size} of {item.size} bytes, or a wrong "
                "checksum) and was dropped; call again to download it anew"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)


def _check_accession(value: Any) -> str:
    if not isinstance(value, str) or not _ACCESSION.fullmatch(value.strip()):
        raise ValidationError(
            f"{value!r} is not an OpenNeuro accession number: those look like ds000102"
        )
    return value.strip()


def _inside_dataset(ds: str, key: str, where: str) -> None:
    """Refuse an object name that would be written outside the dataset's folder (``..``, an
    empty or ``.`` part, a backslash, a NUL; on Windows a drive): S3 names are free text,
    and a cache path is made by joining them."""
    parts = key.split("/")
    if (
        parts[0] != ds
        or len(parts) < 2
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in key
        or "\0" in key
        or (os.name == "nt" and ":" in key)
    ):
        raise RequestError(
            f"{where} lists an object named {key!r}, which would be written outside "
            f"{ds}'s folder in the cache; nothing was downloaded. Check that the endpoint is "
            "OpenNeuro's (unset RTCLOUD_OPENNEURO_S3_URL to use it)"
        )


def _complete(path: Path, item: _Object) -> bool:
    try:
        return path.stat().st_size == item.size
    except OSError:
        return False


def _partial_size(path: Path, item: _Object) -> int:
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    return size if size <= item.size else 0


def _md5_matches(path: Path, etag: str) -> bool:
    """Whether a file's MD5 is the object's ETag (multipart ETags, with a '-', are not MD5s)."""
    if not re.fullmatch(r"[0-9a-f]{32}", etag):
        return True
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest() == etag
