"""RT-Cloud name for :mod:`rtcloud.bids.common` (BIDS constants and helpers)."""

from rtcloud.bids.common import *
from rtcloud.bids.common import (
    BIDS_EVENT_COL_TO_DTYPE,
    CODE_TO_UNIT,
    UNIT_TO_CODE,
    __all__ as _names,
)

__all__ = [*_names, "BIDS_EVENT_COL_TO_DTYPE", "CODE_TO_UNIT", "UNIT_TO_CODE"]
