"""The gRPC side of roles: an interceptor that asks `lifelong.auth.Authorizer` about every call
and, if it refuses, answers UNAUTHENTICATED or PERMISSION_DENIED with its message instead of
running the method."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from lifelong.auth import (
    Authorizer,
    Refusal,
    TokenFileError,
    TokenTable,
    bearer_token,
    token_fingerprint,
)
from lifelong.config import ConfigError, Settings

CODES = {
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
}


def authorizer(settings: Settings) -> Authorizer:
    """The authorizer `settings` ask for: their token file and variable, or none (all open)."""
    texts = []
    try:
        if settings.auth_tokens_file is not None:
            texts.append(settings.auth_tokens_file.read_text())
        if settings.auth_tokens is not None:
            texts.append(settings.auth_tokens)
    except OSError as e:
        raise ConfigError(f"auth_tokens_file: {e}") from None
    if not texts:
        return Authorizer(None)
    try:
        table = TokenTable.parse("\n".join(texts), "auth_tokens_file / auth_tokens")
    except TokenFileError as e:
        raise ConfigError(str(e)) from None
    return Authorizer(table, frozenset({"predict"}) if settings.auth_open_predict else frozenset())


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls `authorizer` refuses, before the method runs (for streams: before a
    request is read)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        authorization = next(
            (value for key, value in details.invocation_metadata if key == "authorization"), None
        )
        refusal = self.authorizer.check(details.method, bearer_token(authorization))
        handler = continuation(details)
        if refusal is None or handler is None:  # None: no such method, UNIMPLEMENTED
            return handler
        return _refusing(handler, refusal)


def _refusing(handler: grpc.RpcMethodHandler, refusal: Refusal) -> grpc.RpcMethodHandler:
    """A handler of `handler`'s kind (unary or streaming each way) that only aborts."""

    def abort(request, context: grpc.ServicerContext):
        context.abort(CODES[refusal.kind], refusal.message)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[handler.request_streaming, handler.response_streaming]
    return make(
        abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def caller(context: grpc.ServicerContext) -> str:
    """Who made a call, for the log of operators' actions: the client certificate's subject
    (mutual TLS), the bearer token's fingerprint, and the peer address, as far as known."""
    parts = []
    names = context.auth_context().get("x509_common_name")
    if names:
        parts.append("cn=" + b",".join(names).decode(errors="replace"))
    metadata = dict(context.invocation_metadata())
    token = bearer_token(metadata.get("authorization"))
    if token is not None:
        parts.append("token " + token_fingerprint(token))
    parts.append("from " + context.peer())
    return " ".join(parts)
