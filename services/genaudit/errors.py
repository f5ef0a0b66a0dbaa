"""Domain errors shared by the library, the workers and the gateway.

Each error names the gRPC status it maps to as a plain string, so that this module (and everything
raising these errors) stays free of grpc imports; the gateway's error interceptor does the mapping.
"""

from __future__ import annotations


class GenauditError(Exception):
    """Base class of every error genaudit raises on purpose."""

    grpc_status: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(GenauditError):
    """The request or its data is malformed (bad spec, corrupt or oversize image, empty dataset...)."""

    grpc_status = "INVALID_ARGUMENT"


class NotFound(GenauditError):
    """Unknown id, or an id that belongs to another tenant (never revealed as such)."""

    grpc_status = "NOT_FOUND"


class AlreadyExists(GenauditError):
    grpc_status = "ALREADY_EXISTS"


class FailedPrecondition(GenauditError):
    """The request is well formed but the system is not in a state to serve it."""

    grpc_status = "FAILED_PRECONDITION"


class Unauthenticated(GenauditError):
    grpc_status = "UNAUTHENTICATED"


class PermissionDenied(GenauditError):
    grpc_status = "PERMISSION_DENIED"


class ResourceExhausted(GenauditError):
    """A size or rate limit was exceeded."""

    grpc_status = "RESOURCE_EXHAUSTED"


class Unavailable(GenauditError):
    """Infrastructure (Redis, object store, broker) cannot be reached; the client may retry."""

    grpc_status = "UNAVAILABLE"


class DeadlineExceeded(GenauditError):
    """The call's deadline passed before what it waits for happened (e.g. a watched job is still running)."""

    grpc_status = "DEADLINE_EXCEEDED"


class JobCancelled(GenauditError):
    """Raised inside a running job when its cancellation was requested."""

    grpc_status = "CANCELLED"


class IntegrityError(GenauditError):
    """Downloaded weights or stored data do not match their pinned checksum."""

    grpc_status = "DATA_LOSS"
