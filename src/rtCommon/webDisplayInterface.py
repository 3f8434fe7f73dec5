"""RT-Cloud name for :mod:`rtcloud.interfaces.web`."""

from rtcloud.interfaces.web import WebDisplayInterface

__all__ = ["WebDisplayInterface"]
