"""RT-Cloud name for :mod:`rtcloud.interfaces.subject`."""

from rtcloud.interfaces.subject import SubjectInterface

__all__ = ["SubjectInterface"]
