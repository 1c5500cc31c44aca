"""Exceptions raised by the client: one class per status code a caller can act on.

>>> err = InvalidArgumentError("Predict failed", grpc.StatusCode.INVALID_ARGUMENT, "no features")
>>> isinstance(err, LifelongError), err.code.name, err.details
(True, 'INVALID_ARGUMENT', 'no features')
"""

from __future__ import annotations

import grpc


class LifelongError(Exception):
    """A call failed. ``code`` is the gRPC status code, ``details`` the server's explanation."""

    def __init__(self, message: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidArgumentError(LifelongError):
    """The request can never succeed as sent; ``details`` says which field and why."""


class NotReadyError(LifelongError):
    """FAILED_PRECONDITION: the model cannot answer yet (it has learned nothing)."""


class ResourceExhaustedError(LifelongError):
    """The request is too large for the server; send fewer rows or features."""


class UnavailableError(LifelongError):
    """The server is unreachable or shutting down; idempotent calls may be retried."""


class DeadlineExceededError(LifelongError):
    """No answer within the call's timeout."""


class UnauthenticatedError(LifelongError):
    """No bearer token, or one the server does not know; ``details`` says which."""


class PermissionDeniedError(LifelongError):
    """The token lacks the role the method needs; ``details`` names the role."""


class ProtocolError(LifelongError):
    """The server broke the API contract, e.g. answered a different request than the one asked."""


_BY_CODE: dict[grpc.StatusCode, type[LifelongError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: NotReadyError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def status_code(err: grpc.RpcError) -> grpc.StatusCode:
    """The status of a failed call (UNKNOWN if grpc gave none)."""
    # Errors raised by grpc's stubs are also grpc.Call; a bare RpcError carries no status.
    return err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN


def error_from_rpc(err: grpc.RpcError, method: str, target: str) -> LifelongError:
    """The exception for a failed call, its message naming the method, the server and the reason."""
    code = status_code(err)
    details = (err.details() if isinstance(err, grpc.Call) else None) or ""
    message = f"{method} on {target} failed with {code.name}: {details}"
    return _BY_CODE.get(code, LifelongError)(message, code, details)
