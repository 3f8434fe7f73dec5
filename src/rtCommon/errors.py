"""RT-Cloud name for :mod:`rtcloud.errors` (``RTError`` is the root, as in RT-Cloud)."""

from rtcloud.errors import *  # noqa: F403
from rtcloud.errors import __all__ as __all__
