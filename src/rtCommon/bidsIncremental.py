"""RT-Cloud name for :mod:`rtcloud.bids.incremental`."""

from rtcloud.bids.incremental import BidsIncremental

__all__ = ["BidsIncremental"]
