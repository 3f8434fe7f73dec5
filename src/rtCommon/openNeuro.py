"""RT-Cloud name for :mod:`rtcloud.bids.openneuro`."""

from rtcloud.bids.openneuro import OpenNeuroCache

__all__ = ["OpenNeuroCache"]
