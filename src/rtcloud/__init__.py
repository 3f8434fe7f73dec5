"""rtcloud: a real-time fMRI framework compatible with RT-Cloud experiment scripts.

The names an experiment script needs, all importable from here::

    import rtcloud

    cfg = rtcloud.loadConfigFile("conf/myexp.toml")
    ci = rtcloud.ClientInterface(yesToPrompts=True)
    dicom = ci.dataInterface.getImageData(streamId, 0, timeout=30)
    volume = rtcloud.convertDicomImgToNifti(dicom)

- :class:`ClientInterface`: what a script creates first; its ``dataInterface``,
  ``subjInterface``, ``webInterface`` and ``bidsInterface`` are a :class:`DataInterface`, a
  :class:`SubjectInterface`, a :class:`WebDisplayInterface` and a :class:`BidsInterface` (in
  this process, or served through the project server with the same methods).
- :class:`BidsIncremental`, :class:`BidsRun`, :class:`BidsArchive` and
  :class:`OpenNeuroCache`: volumes, runs and datasets in BIDS, and OpenNeuro downloads.
- :func:`loadConfigFile` and :class:`StructDict`: the experiment's settings.
- :func:`convertDicomImgToNifti` and :func:`dicomTimeToNextTr`: a volume's image and timing.
- :class:`FeedbackClient`: the stimulus computer's side (PsychoPy or any Python).
- :class:`RTCloudError` and the module :mod:`rtcloud.errors`: every error rtcloud raises.

Everything else (``rtcloud.server``, ``rtcloud.transport``, ``rtcloud.rpc`` ...) is the
machinery behind these names: internal, and free to change. RT-Cloud's module names
(``rtCommon.clientInterface`` ...) keep working too. The names load on first use, so
``import rtcloud`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "ClientInterface": "rtcloud.interfaces.client",
    "DataInterface": "rtcloud.interfaces.data",
    "SubjectInterface": "rtcloud.interfaces.subject",
    "WebDisplayInterface": "rtcloud.interfaces.web",
    "FeedbackClient": "rtcloud.feedback",
    "StructDict": "rtcloud.structdict",
    "loadConfigFile": "rtcloud.config",
    "convertDicomImgToNifti": "rtcloud.imaging.nifti",
    "dicomTimeToNextTr": "rtcloud.imaging.timing",
    "RTCloudError": "rtcloud.errors",
    "BidsInterface": "rtcloud.interfaces.bids",
    "BidsIncremental": "rtcloud.bids.incremental",
    "BidsRun": "rtcloud.bids.run",
    "BidsArchive": "rtcloud.bids.archive",
    "OpenNeuroCache": "rtcloud.bids.openneuro",
}

__all__ = [
    "BidsArchive",
    "BidsIncremental",
    "BidsInterface",
    "BidsRun",
    "ClientInterface",
    "DataInterface",
    "FeedbackClient",
    "OpenNeuroCache",
    "RTCloudError",
    "StructDict",
    "SubjectInterface",
    "WebDisplayInterface",
    "__version__",
    "convertDicomImgToNifti",
    "dicomTimeToNextTr",
    "errors",
    "loadConfigFile",
]

if TYPE_CHECKING:  # what editors and type checkers see; at run time __getattr__ loads them
    from rtcloud import errors
    from rtcloud.bids.archive import BidsArchive
    from rtcloud.bids.incremental import BidsIncremental
    from rtcloud.bids.openneuro import OpenNeuroCache
    from rtcloud.bids.run import BidsRun
    from rtcloud.config import loadConfigFile
    from rtcloud.errors import RTCloudError
    from rtcloud.feedback import FeedbackClient
    from rtcloud.imaging.nifti import convertDicomImgToNifti
    from rtcloud.imaging.timing import dicomTimeToNextTr
    from rtcloud.interfaces.bids import BidsInterface
    from rtcloud.interfaces.client import ClientInterface
    from rtcloud.interfaces.data import DataInterface
    from rtcloud.interfaces.subject import SubjectInterface
    from rtcloud.interfaces.web import WebDisplayInterface
    from rtcloud.structdict import StructDict


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # the next lookup does not come here
        return value
    if name == "errors":
        return importlib.import_module("rtcloud.errors")
    raise AttributeError(
        f"module 'rtcloud' has no attribute {name!r}; its public names are: "
        + ", ".join(sorted(__all__, key=str.lower))
    )


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
