"""RT-Cloud name for :mod:`rtcloud.interfaces.client`."""

from rtcloud.interfaces.client import ClientInterface

__all__ = ["ClientInterface"]
