"""RT-Cloud name for :mod:`rtcloud.structdict`."""

from rtcloud.matlab import MatlabStructDict, convertStructuredArrayToDict, isStructuredArray
from rtcloud.structdict import StructDict, copy_toplevel, recurseCreateStructDict, recurseSDtoDict

__all__ = [
    "MatlabStructDict",
    "StructDict",
    "convertStructuredArrayToDict",
    "copy_toplevel",
    "isStructuredArray",
    "recurseCreateStructDict",
    "recurseSDtoDict",
]
