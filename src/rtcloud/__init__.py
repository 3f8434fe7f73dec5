"""rtcloud: a real-time fMRI framework compatible with RT-Cloud experiment scripts.

User scripts mostly need :class:`ClientInterface`; everything else is reached through it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
