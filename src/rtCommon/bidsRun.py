"""RT-Cloud name for :mod:`rtcloud.bids.run`."""

from rtcloud.bids.run import BidsRun

__all__ = ["BidsRun"]
