"""RT-Cloud name for :mod:`rtcloud.interfaces.bids`."""

from rtcloud.interfaces.bids import BidsInterface

__all__ = ["BidsInterface"]
