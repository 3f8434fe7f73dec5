"""BidsArchive: a BIDS dataset on disk, read with pybids and written a run at a time.

Reading goes through pybids' ``BIDSLayout`` (made when first needed and made again after this
object writes): images, sidecar metadata with BIDS' inheritance, events tables (pandas),
README, and :meth:`BidsArchive.getBidsRun`, which loads one run's 4-D image into a
:class:`~rtcloud.bids.run.BidsRun` without copying each volume. Writing
(:meth:`BidsArchive.appendBidsRun`) adds ``dataset_description.json`` and ``README`` when the
dataset has none, then the run's image, sidecar and events; the image is written volume by
volume into a temporary file that is renamed into place, so a reader never sees half a file
and an existing run is never overwritten. What it writes passes the official BIDS validator.

RT-Cloud's layout methods are reachable in camelCase (``getSubjects()`` ->
``BIDSLayout.get_subjects()``).

pybids and pandas are imported when first used, so importing this module stays light (and
loads no event loop or socket module, which pybids itself imports).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from rtcloud.bids.common import (
    DEFAULT_README,
    PYBIDS_PSEUDO_ENTITIES,
    VOLUME_METADATA,
    BidsFileExtension,
    bids_data_dir,
    bids_file_name,
    dumps_sidecar,
    events_from_tsv,
    events_to_tsv,
    non_entities,
)
from rtcloud.bids.incremental import BidsIncremental
from rtcloud.bids.run import BidsRun
from rtcloud.errors import NoMatchError, QueryError, StateError, ValidationError

__all__ = ["BidsArchive"]

_IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
_README_NAMES = ("README", "README.md", "README.txt", "README.rst")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class BidsArchive:
    """A BIDS dataset rooted at ``rootPath`` (which may not exist yet: it is created by the
    first :meth:`appendBidsRun`)."""

    def __init__(self, rootPath: str | os.PathLike[str]) -> None:
        self.rootPath = os.path.abspath(os.fspath(rootPath))
        self._layout_cache: Any = None

    def __repr__(self) -> str:
        return f"<BidsArchive {self.rootPath!r}>"

    # ------------------------------------------------------------ the pybids layout

    def isEmpty(self) -> bool:
        """True while the folder holds no BIDS dataset (no dataset_description.json)."""
        return not os.path.isfile(os.path.join(self.rootPath, "dataset_description.json"))

    def _why_empty(self) -> str:
        if not os.path.exists(self.rootPath):
            return f"the folder {self.rootPath!r} does not exist"
        if not os.path.isdir(self.rootPath):
            return f"{self.rootPath!r} is not a folder"
        return (
            f"{self.rootPath!r} is not a BIDS dataset: it has no dataset_description.json "
            "(point at the dataset's top folder, the one holding sub-* folders)"
        )

    def _require_dataset(self) -> None:
        if self.isEmpty():
            raise StateError(f"Dataset empty: {self._why_empty()}")

    @property
    def data(self) -> Any:
        """The pybids ``BIDSLayout`` of the dataset, or None while it is empty."""
        if self.isEmpty():
            return None
        if self._layout_cache is None:
            from bids import BIDSLayout

            try:
                self._layout_cache = BIDSLayout(self.rootPath, validate=False)
            except Exception as exc:  # pybids raises many types for a broken dataset
                raise ValidationError(
                    f"pybids cannot read the BIDS dataset {self.rootPath!r}: {exc}"
                ) from exc
        return self._layout_cache

    def _layout(self) -> Any:
        self._require_dataset()
        return self.data

    def _changed(self) -> None:
        self._layout_cache = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """``getSubjects()`` and other camelCase getters of RT-Cloud, answered by pybids."""
        if not name.startswith("get") or name.startswith("__"):
            raise AttributeError(name)
        method = _snake(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            layout = self.data
            if layout is None:
                return None
            target = getattr(layout, method, None)
            if target is None:
                raise AttributeError(f"BidsArchive has no method {name} (nor pybids {method})")
            return target(*args, **kwargs)

        call.__name__ = name
        return call

    # ------------------------------------------------------------ files

    def absPathFromRelPath(self, relPath: str) -> str:
        return os.path.join(self.rootPath, relPath)

    def tryGetFile(self, path: str) -> Any:
        """The pybids file object of a path (absolute or relative to the root), or None."""
        layout = self.data
        if layout is None:
            return None
        full = path if os.path.isabs(path) else self.absPathFromRelPath(path)
        return layout.get_file(full)

    def dirExistsInArchive(self, relPath: str) -> bool:
        return os.path.isdir(self.absPathFromRelPath(relPath))

    def getReadme(self) -> Any:
        """The README's pybids file object (its ``.path``), or None."""
        layout = self._layout()
        for name in _README_NAMES:
            found = layout.get_file(os.path.join(self.rootPath, name))
            if found is not None:
                return found
        return None

    def getReadmeText(self) -> str | None:
        for name in _README_NAMES:
            path = os.path.join(self.rootPath, name)
            if os.path.isfile(path):
                return Path(path).read_text(encoding="utf-8", errors="replace")
        return None

    def getDatasetDescription(self) -> dict[str, Any]:
        self._require_dataset()
        text = Path(self.rootPath, "dataset_description.json").read_text(encoding="utf-8")
        try:
            description = json.loads(text)
        except ValueError as exc:
            raise ValidationError(
                f"{self.rootPath}/dataset_description.json is not valid JSON: {exc}"
            ) from None
        if not isinstance(description, dict):
            raise ValidationError(f"{self.rootPath}/dataset_description.json is not an object")
        return description

    def getImages(self, matchExact: bool = False, **entities: Any) -> list[Any]:
        """pybids image files (``.nii``/``.nii.gz``) matching ``entities``.

        With ``matchExact``, only images whose entities are exactly those given.
        """
        extension = entities.pop("extension", None)
        if extension is not None and extension not in _IMAGE_EXTENSIONS:
            raise ValidationError(
                f"getImages: extension must be one of {_IMAGE_EXTENSIONS}, got {extension!r}"
            )
        layout = self._layout()
        images = layout.get(
            return_type="object", extension=[extension] if extension else _IMAGE_EXTENSIONS,
            **entities,
        )  # fmt: skip
        if matchExact:  # (run 1 is run-01: index entities compare as numbers)
            wanted = {k: _entity_value(k, v) for k, v in entities.items()}
            images = [
                image
                for image in images
                if {
                    k: _entity_value(k, v)
                    for k, v in image.get_entities().items()
                    if k not in PYBIDS_PSEUDO_ENTITIES
                }
                == wanted
            ]
        return list(images)

    def getSidecarMetadata(self, image: Any, includeEntities: bool = True) -> dict[str, Any]:
        """The sidecar fields of an image (inherited ones too), and its entities."""
        path = image if isinstance(image, (str, os.PathLike)) else image.path
        layout = self._layout()
        metadata = dict(layout.get_metadata(os.fspath(path)))
        if includeEntities:
            file = layout.get_file(os.fspath(path))
            if file is not None:
                metadata.update(_plain_entities(file.get_entities()))
        return metadata

    def getEvents(self, matchExact: bool = False, **entities: Any) -> list[Any]:
        """Events tables (pandas) of the events files matching ``entities``."""
        layout = self._layout()
        query = {k: v for k, v in entities.items() if k not in ("suffix", "extension")}
        files = layout.get(return_type="object", suffix="events", extension=".tsv", **query)
        if matchExact:
            files = [f for f in files if _plain_entities(f.get_entities()).keys() >= query.keys()]
        return [_read_events(f.path) for f in files]

    def _events_for(self, image_entities: dict[str, Any]) -> Any:
        """The events table that applies to an image: the most specific matching events file
        (BIDS' inheritance: a file higher up applies unless a deeper one overrides it)."""
        layout = self._layout()
        best: tuple[int, str] | None = None
        task = image_entities.get("task")
        candidates = layout.get(
            return_type="object", suffix="events", extension=".tsv",
            **({"task": task} if task else {}),
        )  # fmt: skip
        for file in candidates:
            found = _plain_entities(file.get_entities())
            found.pop("suffix", None)
            found.pop("datatype", None)
            if all(str(image_entities.get(k)) == str(v) for k, v in found.items()):
                if best is None or len(found) > best[0]:
                    best = (len(found), file.path)
        return None if best is None else _read_events(best[1])

    # ------------------------------------------------------------ runs

    def getBidsRun(self, **entities: Any) -> BidsRun:
        """The run whose image matches ``entities`` (suffix ``bold`` unless given).

        Raises:
            NoMatchError: no image matches (the message lists what the dataset has).
            QueryError: more than one image matches (the message lists them).
        """
        query = {"suffix": "bold", "datatype": "func", **entities}
        images = self.getImages(**query)
        if not images:
            raise NoMatchError(
                f"no image in {self.rootPath} matches {entities}; the dataset has "
                f"{self._summary()}"
            )
        if len(images) > 1:
            names = [os.path.relpath(i.path, self.rootPath) for i in images[:10]]
            raise QueryError(
                f"{len(images)} images match {entities}; name one run exactly (add session, "
                f"run, acquisition ...): {names}"
            )
        image_file = images[0]
        metadata = self.getSidecarMetadata(image_file, includeEntities=True)
        metadata.pop("extension", None)
        image: Any = nib.load(image_file.path)
        data = np.asanyarray(image.dataobj)
        if isinstance(data, np.memmap):
            data = np.array(data)  # independent of the file, which may be replaced later
        header = image.header.copy()
        if data.dtype.kind == "f" and header.get_data_dtype().kind in "iu":
            # integers scaled on reading (scl_slope, scl_inter): keep the values read, as
            # floats, so that writing or sending the run does not round them again
            narrow = data.astype(np.float32)
            data = narrow if np.array_equal(narrow, data) else data
            header.set_data_dtype(data.dtype)
            header.set_slope_inter(1.0, 0.0)
        image = type(image)(data, image.affine, header)
        if "RepetitionTime" not in metadata and len(image.header.get_zooms()) > 3:
            metadata["RepetitionTime"] = float(image.header.get_zooms()[3])
        try:
            incremental = BidsIncremental(image, metadata, self.getDatasetDescription())
        except Exception as exc:
            raise ValidationError(
                f"{os.path.relpath(image_file.path, self.rootPath)} cannot be read as a BIDS "
                f"run: {exc}"
            ) from exc
        readme = self.getReadmeText()
        if readme is not None:
            incremental.readme = readme
        events = self._events_for(metadata)
        if events is not None:
            incremental.events = events
        run = BidsRun(**_plain_entities(image_file.get_entities()))
        run.appendIncremental(incremental)
        return run

    def _summary(self) -> str:
        layout = self._layout()
        parts = []
        for what in ("subjects", "sessions", "tasks", "runs"):
            values = getattr(layout, f"get_{what}")()
            if values:
                parts.append(f"{what} {sorted(str(v) for v in values)}")
        return ", ".join(parts) or "no images"

    def appendBidsRun(self, run: BidsRun) -> str:
        """Write ``run`` into the dataset; return the path of its image.

        The dataset gets ``dataset_description.json`` and ``README`` (the run's) if it has
        none. A run whose image file already exists (``run-1`` and ``run-01`` name the same
        run) is refused (StateError) rather than overwritten.
        """
        if not isinstance(run, BidsRun):
            raise TypeError(f"appendBidsRun takes a BidsRun, got {type(run).__name__}")
        if run.numIncrementals() == 0:
            raise ValidationError("appendBidsRun: the run has no volumes")
        existing = self._run_image(run.run_metadata())
        if existing is not None:
            raise StateError(
                f"{existing} already exists; a run is never overwritten (delete it first, "
                "or give the new run another run number)"
            )
        return self._write_run(run)

    def _run_image(self, metadata: dict[str, Any]) -> Path | None:
        """The image file of the run these entities name, if the dataset has it."""
        folder = Path(self.rootPath, bids_data_dir(metadata))
        wanted = _name_entities(bids_file_name(metadata, BidsFileExtension.IMAGE.value))
        if not folder.is_dir():
            return None
        for path in sorted(folder.iterdir()):
            if path.name.endswith((".nii", ".nii.gz")) and _name_entities(path.name) == wanted:
                return path
        return None

    def _write_run(self, run: BidsRun, replacing: Path | None = None) -> str:
        """Write a run's image, sidecar and events (``replacing``: the run's old image)."""
        metadata = run.run_metadata()
        folder = Path(self.rootPath, bids_data_dir(metadata))
        image_path = folder / bids_file_name(metadata, BidsFileExtension.IMAGE.value)
        if replacing is not None:  # keep the run's file names (run-01 stays run-01)
            folder = replacing.parent
            image_path = folder / (replacing.name.split(".", 1)[0] + ".nii")
        stem = image_path.name.removesuffix(".nii")
        folder.mkdir(parents=True, exist_ok=True)
        root = Path(self.rootPath)
        if not (root / "dataset_description.json").exists():
            _write_text(
                root / "dataset_description.json",
                json.dumps(run.datasetDescription, indent=4) + "\n",
            )
        if not any((root / name).exists() for name in _README_NAMES):
            _write_text(root / "README", run.readme or DEFAULT_README)
        _write_run_image(run, image_path)
        if replacing is not None and replacing != image_path:
            replacing.unlink()  # the old run-01 (or .nii.gz) file the new one replaces
        _write_text(
            folder / f"{stem}.json", dumps_sidecar(non_entities(metadata, VOLUME_METADATA))
        )
        events_name = stem.rsplit("_", 1)[0] + "_events.tsv"
        _write_text(folder / events_name, events_to_tsv(run.events))
        self._changed()
        return str(image_path)

    def appendIncremental(
        self, incremental: BidsIncremental, makePath: bool = True, validateAppend: bool = True
    ) -> str:
        """Add an incremental's volumes to the dataset (RT-Cloud's older scripts call this
        once per volume); return the path of the run's image.

        When the run's image exists, the volumes go at its end: the run is read, extended
        and written again (each call rewrites the whole run, as RT-Cloud's did; a script
        that builds a run should keep a :class:`BidsRun` and call :meth:`appendBidsRun`
        once). Else the incremental becomes a new run. ``makePath=False`` refuses to create
        a dataset that does not exist yet.

        Raises:
            MetadataMismatchError: the volumes do not fit the existing run (with
                ``validateAppend``); nothing is written.
        """
        if not isinstance(incremental, BidsIncremental):
            raise TypeError(
                f"appendIncremental takes a BidsIncremental, got {type(incremental).__name__}"
            )
        if not makePath and not Path(self.rootPath).is_dir():
            raise StateError(
                f"{self.rootPath} does not exist; pass makePath=True to create the dataset"
            )
        metadata = incremental.getImageMetadata()
        existing = self._run_image(metadata)
        if existing is None:
            run = BidsRun(**incremental.getEntities())
            run.appendIncremental(incremental)
            return self._write_run(run)
        image_file = self._layout().get_file(str(existing))
        entities = _plain_entities(image_file.get_entities()) if image_file else {}
        run = self.getBidsRun(**entities)
        run.appendIncremental(incremental, validateAppend=validateAppend)
        return self._write_run(run, replacing=existing)

    def _appendIncremental(
        self, incremental: BidsIncremental, makePath: bool = True, validateAppend: bool = True
    ) -> bool:
        """RT-Cloud's name of :meth:`appendIncremental`: True once the volumes are written."""
        self.appendIncremental(incremental, makePath=makePath, validateAppend=validateAppend)
        return True

    def _getIncremental(self, imageIndex: int = 0, **entities: Any) -> BidsIncremental:
        return self.getBidsRun(**entities).getIncremental(imageIndex)


def _plain_entities(entities: dict[str, Any]) -> dict[str, Any]:
    """pybids entities as plain values (``run`` as int), without ``extension``."""
    out: dict[str, Any] = {}
    for key, value in entities.items():
        if key in PYBIDS_PSEUDO_ENTITIES:
            continue
        if key == "run":
            try:
                value = int(value)
            except (TypeError, ValueError):
                pass
        out[key] = value
    return out


#: Entities whose values are numbers: ``run-01`` and ``run-1`` name the same run.
_INDEX_ENTITIES = frozenset({"run", "echo", "chunk", "flip", "inv", "mt"})


def _entity_value(key: str, value: Any) -> str:
    """An entity's value as text, an index (``run``, ``echo`` ...) without leading zeros."""
    text = str(value)
    return str(int(text)) if key in _INDEX_ENTITIES and text.isdigit() else text


def _name_entities(name: str) -> tuple[tuple[str, str], ...]:
    """The entities and suffix of a BIDS file name, index values as numbers."""
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    out = [("suffix", parts[-1])]
    for part in parts[:-1]:
        key, _, value = part.partition("-")
        if key in _INDEX_ENTITIES and value.isdigit():
            value = str(int(value))
        out.append((key, value))
    return tuple(sorted(out))


def _read_events(path: str) -> Any:
    return events_from_tsv(Path(path).read_text(encoding="utf-8"))


def _temporary(path: Path) -> Path:
    """A new file beside ``path`` for writing it, created with the process's umask (as any
    file the user writes; ``mkstemp`` would make it readable by its owner only)."""
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(temp, "xb"):
                return temp
        except FileExistsError:
            continue


def _write_text(path: Path, text: str) -> None:
    """Write a text file under a temporary name, then rename it into place."""
    temp = _temporary(path)
    try:
        with open(temp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _write_run_image(run: BidsRun, path: Path) -> None:
    """Write a run's 4-D NIfTI volume by volume (no 4-D copy in memory), then rename it."""
    header = run.run_image_header()
    temp = _temporary(path)
    try:
        with open(temp, "wb") as fh:
            if isinstance(header, nib.Nifti2Header):
                header = nib.Nifti2Header.from_header(header)
            else:
                header = nib.Nifti1Header.from_header(header)
            header.set_slope_inter(1.0, 0.0)  # voxels are stored as they are
            offset = header.single_vox_offset
            header["vox_offset"] = offset
            header["magic"] = header.single_magic
            block = header.binaryblock
            fh.write(block)
            fh.write(b"\0" * (offset - len(block)))
            dtype = header.get_data_dtype()
            for volume in run.iter_volumes():
                fh.write(np.asarray(volume, dtype=dtype).tobytes(order="F"))
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
