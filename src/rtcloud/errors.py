"""Every error rtcloud raises, under one root.

The tree::

    RTCloudError
    ├── ValidationError (also ValueError)    bad argument: a path outside the allowed
    │   │                                    directories, a forbidden file type, a bad value
    │   ├── ConfigError (also InvocationError)  an experiment config file is missing or invalid
    │   ├── WatchDirectoryError (also NotADirectoryError)  a folder to watch does not exist
    │   ├── SerializationError (also TypeError)  a value that cannot be sent to another
    │   │                                    process (type not supported, too deep, too big)
    │   ├── InvalidDicomError (also StateError)  bytes that are not a (complete) DICOM image
    │   ├── InvalidRequestError (also RequestError)  a request that cannot work as asked (a
    │   │                                    timeout <= 0, a relative path pattern)
    │   ├── NotInWatchedFolderError (also StateError, RequestError)  a file to wait for is
    │   │                                    not in the watched folder
    │   └── PreprocessError                  preprocessing cannot use an input (``kind`` says
    │       │                                which problem, for the page's flags)
    │       ├── VolumeError                  a volume: wrong shape or affine, NaNs, all zero
    │       ├── MaskError                    a mask or ROI: no overlap, another space
    │       └── RegistrationError            motion correction did not converge
    ├── StateError                           a call made in the wrong state (watchFile before
    │                                        initWatch, unknown stream id, ...)
    ├── RequestError                         a request could not be carried out
    │   ├── FileWaitTimeout (also TimeoutError)  a file did not appear complete in time
    │   └── FeedbackDeliveryError            a feedback peer refused or could not present an
    │                                        earlier result (raised on the next feedback call)
    ├── InvocationError                      a program or pattern was invoked wrongly
    ├── RpcError                             the remote-call machinery failed
    │   ├── ProtocolError                    a malformed or oversized message
    │   ├── ServiceUnavailableError (also ConnectionError)
    │   │                                    no service connected, or it dropped mid-call
    │   ├── CallTimeout (also TimeoutError)  a remote call's deadline passed
    │   ├── CallCancelled                    the caller gave up on a call before its result
    │   ├── RemoteCallError                  the peer raised an error type we do not re-create
    │   └── AuthenticationError (also PermissionError)  a wrong secret or password
    └── RT-Cloud's remaining names, kept so that ``except`` clauses in existing scripts work:
        MessageError, VersionError, MissedDeadlineError, MissedMultipleDeadlines,
        MissingMetadataError, MetadataMismatchError, DimensionError,
        QueryError
        └── NoMatchError (also LookupError)  a BIDS query matched nothing

Errors that also derive from a builtin (``ValueError``, ``TimeoutError``, ...) are caught by
generic handlers too. Where RT-Cloud raised ``StateError`` or ``RequestError`` for what we
report as a ``ValidationError`` (a truncated DICOM, a file outside the watched folder, a
timeout <= 0), our error derives from both, so ``except`` clauses written for either work.
Unlike RT-Cloud we never shadow a builtin (there is no ``rtcloud.errors.NotImplementedError``).

This module holds no logic and imports nothing from rtcloud.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CallCancelled",
    "CallTimeout",
    "ConfigError",
    "DimensionError",
    "FeedbackDeliveryError",
    "FileWaitTimeout",
    "InvalidDicomError",
    "InvalidRequestError",
    "InvocationError",
    "MaskError",
    "MessageError",
    "MetadataMismatchError",
    "MissedDeadlineError",
    "MissedMultipleDeadlines",
    "MissingMetadataError",
    "NoMatchError",
    "NoSuchStreamError",
    "NotInWatchedFolderError",
    "PreprocessError",
    "ProtocolError",
    "QueryError",
    "RTCloudError",
    "RTError",
    "RegistrationError",
    "RemoteCallError",
    "RequestError",
    "RpcError",
    "SerializationError",
    "ServiceReplacedError",
    "ServiceUnavailableError",
    "StateError",
    "ValidationError",
    "VersionError",
    "VolumeError",
    "WatchDirectoryError",
]


class RTCloudError(Exception):
    """Root of every rtcloud error."""


#: RT-Cloud's name for the root.
RTError = RTCloudError


class ValidationError(RTCloudError, ValueError):
    """An argument was rejected: a path, a file type, a value out of range."""


class InvocationError(RTCloudError):
    """A program, command or file pattern was invoked in a way that cannot work."""


class ConfigError(ValidationError, InvocationError):
    """An experiment configuration file is missing, unreadable or lacks a required field.

    It is also an ``InvocationError``, which is what RT-Cloud raised for a bad config file.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        errors: dict[str, str] | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.field = field
        #: For a refused save of several settings: setting name -> what is wrong with it.
        self.errors = dict(errors or {})
        #: Where a file that cannot be parsed goes wrong (1-based), when known.
        self.line = line
        self.column = column


class StateError(RTCloudError):
    """A call that is not valid in the current state."""


class RequestError(RTCloudError):
    """A request could not be carried out."""


class InvalidDicomError(ValidationError, StateError):
    """Bytes that are not a DICOM image, or one whose pixel data is not all there yet.

    Also a ``StateError``: what RT-Cloud raised when converting a truncated DICOM.
    """


class InvalidRequestError(ValidationError, RequestError):
    """A request whose arguments cannot work (a timeout <= 0, a relative path pattern).

    Also a ``RequestError``: what RT-Cloud raised for these.
    """


class NotInWatchedFolderError(ValidationError, StateError, RequestError):
    """A file to wait for is not in the watched folder.

    Also a ``StateError`` and a ``RequestError``: what RT-Cloud's file watcher and its
    ``watchFile`` raised.
    """


class PreprocessError(ValidationError):
    """Preprocessing cannot use an input; ``kind`` names the problem in one word.

    Per volume, :meth:`rtcloud.preprocess.Pipeline.process` does not raise these: it flags
    the volume with them (``result.problems``) and the run goes on.
    """

    def __init__(self, message: str, *, kind: str, volume: int | None = None) -> None:
        super().__init__(message)
        #: ``shape``, ``affine``, ``nan``, ``zero``, ``no-overlap``, ``other-space``,
        #: ``outside-brain``, ``not-converged``, ``reference`` ...
        self.kind = kind
        #: Index of the volume concerned (None for a mask or a setting).
        self.volume = volume


class VolumeError(PreprocessError):
    """A volume cannot be used: its shape or affine differ from the reference's, it holds
    NaNs or infinities, or it is all zero."""


class MaskError(PreprocessError):
    """A mask or ROI cannot be used on the functional volumes: it does not overlap them, it is
    empty, or it is in a template or another subject's space."""


class RegistrationError(PreprocessError):
    """Motion correction did not converge for a volume."""


class WatchDirectoryError(ValidationError, NotADirectoryError):
    """The folder to watch does not exist or is not a folder."""


class SerializationError(ValidationError, TypeError):
    """A value cannot be sent to another process: its type is not supported, it is nested too
    deeply, or it is larger than a message may be. It is a ``TypeError`` too, as with ``json``.
    """


class NoSuchStreamError(ValidationError, KeyError):
    """A stream id that no ``init*Stream`` call returned (or that was closed). It is a
    ``KeyError`` too, what RT-Cloud's BidsInterface raised for an unknown stream."""

    __str__ = Exception.__str__  # the message, not KeyError's quoted repr of it


class FileWaitTimeout(RequestError, TimeoutError):
    """A file did not appear, complete, within the time allowed.

    It is a ``TimeoutError`` (what RT-Cloud's ``watchFile`` raised) and a ``RequestError``
    (what its ``getImageData`` raised), so existing ``except`` clauses of either kind work.
    """

    def __init__(self, message: str, *, path: str | None = None, waited: float | None = None):
        super().__init__(message)
        self.path = path
        self.waited = waited


class FeedbackDeliveryError(RequestError):
    """A feedback peer refused or failed to present an earlier result.

    Feedback calls return before their result reaches the stimulus computer, so such a
    failure is raised on the script's next feedback call (the call that raises it was
    itself kept and sent).
    """


class RpcError(RTCloudError):
    """The remote-call machinery failed."""


class ProtocolError(RpcError):
    """A message broke the wire protocol (malformed, truncated, oversized, unexpected)."""


class ServiceUnavailableError(RpcError, ConnectionError):
    """The service a call needs is not connected, or disconnected while the call was pending."""


class ServiceReplacedError(ServiceUnavailableError):
    """Another service of this role connected to the server: this one stops."""


class CallTimeout(RpcError, TimeoutError):
    """A remote call's deadline passed before its result arrived."""


class CallCancelled(RpcError):  # noqa: N818 (named like CallTimeout)
    """The caller cancelled a remote call before its result arrived."""


class RemoteCallError(RpcError):
    """The remote side raised an error whose type is not re-created locally.

    ``remote_type`` is the peer's type name and ``remote_traceback`` its traceback text.
    """

    def __init__(self, message: str, *, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class AuthenticationError(RpcError, PermissionError):
    """A peer presented a wrong secret, token or password."""


class MessageError(RTCloudError):
    """A message could not be understood (RT-Cloud name)."""


class VersionError(RTCloudError):
    """Incompatible versions (RT-Cloud name)."""


class MissedDeadlineError(RTCloudError):
    """A deadline was missed (RT-Cloud name)."""


class MissedMultipleDeadlines(RTCloudError):
    """Several deadlines were missed (RT-Cloud name)."""


class MissingMetadataError(RTCloudError):
    """Required metadata is missing (RT-Cloud name, BIDS)."""


class MetadataMismatchError(RTCloudError):
    """Metadata does not match (RT-Cloud name, BIDS)."""


class DimensionError(RTCloudError):
    """Array dimensions do not match (RT-Cloud name)."""


class QueryError(RTCloudError):
    """A query matched nothing or too much (RT-Cloud name, BIDS)."""


class NoMatchError(QueryError, LookupError):
    """A query (a BIDS run, say) matched nothing (RT-Cloud name)."""
