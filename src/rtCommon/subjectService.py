"""RT-Cloud name: ``SubjectService``, the participant's side of the feedback in a program of
its own, as RT-Cloud's PsychoPy examples run it::

    from rtCommon.subjectService import SubjectService
    from rtCommon.wsRemoteService import parseConnectionArgs

    service = SubjectService(parseConnectionArgs())
    service.runDetached()
    result = service.subjectInterface.dequeueResult(block=True, timeout=5)

The script's ``setResult``/``setResultDict``/``setMessage`` calls land in
``service.subjectInterface`` (a :class:`~rtcloud.interfaces.subject.SubjectInterface`).
``rtcloud subject-service`` is the same service as a command that writes each result to a
file instead.
"""

from __future__ import annotations

import argparse
import threading

from rtcloud.interfaces.subject import SubjectInterface
from rtCommon.wsRemoteService import WsRemoteService

__all__ = ["SubjectService"]


class SubjectService:
    """Serve a SubjectInterface to the project server (RT-Cloud's class of this name)."""

    def __init__(self, args: argparse.Namespace, webSocketChannelName: str = "wsSubject") -> None:
        self.subjectInterface = SubjectInterface()
        self.wsRemoteService = WsRemoteService(args, webSocketChannelName)
        self.wsRemoteService.addHandlerClass(SubjectInterface, self.subjectInterface)

    def runForever(self) -> None:
        self.wsRemoteService.runForever()

    def runDetached(self) -> threading.Thread:
        return self.wsRemoteService.runDetached()

    def stop(self) -> None:
        self.wsRemoteService.stop()
