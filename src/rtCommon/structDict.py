"""RT-Cloud name for :mod:`rtcloud.structdict`."""

from rtcloud.structdict import StructDict, copy_toplevel, recurseCreateStructDict, recurseSDtoDict

__all__ = ["StructDict", "copy_toplevel", "recurseCreateStructDict", "recurseSDtoDict"]
