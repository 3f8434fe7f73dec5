"""RT-Cloud name for :mod:`rtcloud.bids.archive`."""

from rtcloud.bids.archive import BidsArchive
from rtcloud.errors import NoMatchError, QueryError, StateError

__all__ = ["BidsArchive", "NoMatchError", "QueryError", "StateError"]
