"""RT-Cloud name for :mod:`rtcloud.errors` (``RTError`` is the root, as in RT-Cloud)."""

import builtins as _builtins

from rtcloud.errors import *  # noqa: F403
from rtcloud.errors import (
    RTCloudError as _Root,
    __all__ as __all__,
)


class NotImplementedError(_Root, _builtins.NotImplementedError):  # noqa: A001
    """RT-Cloud's name: shadows the builtin for ``from rtCommon.errors import *`` users, and
    is still caught by ``except NotImplementedError`` of the builtin."""


__all__ = [*__all__, "NotImplementedError"]  # noqa: PLE0604
