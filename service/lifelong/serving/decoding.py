"""Requests whose bytes do not decode as the method's message: INVALID_ARGUMENT, not INTERNAL.

grpc's Python server calls a method's request deserializer itself; when it raises, the server logs
"Exception deserializing message!" with a traceback and fails the call with INTERNAL "Exception
deserializing request!", on every such call (issue 16, finding 5). Servicers are registered here
through `Registrar` instead, which gives each method a deserializer that never raises (bytes that
do not decode become an `Undecodable`) and a behaviour that answers one with INVALID_ARGUMENT
naming the message it expected, before the servicer sees it; in a request stream, at that
message. Nothing is logged: the caller is told, and a client sending garbage cannot fill the log.

Registration, not an interceptor: nothing is added to a call that decodes but one `type` check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

__all__ = ["Registrar", "Undecodable"]


class Undecodable:
    """What a request deserializer gives for bytes that are not its message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _safe(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)  # `Message.FromString`, bound to its class
    descriptor = getattr(owner, "DESCRIPTOR", None)
    expected = getattr(descriptor, "full_name", "the method's request message")

    def deserializer(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as e:  # DecodeError, and whatever else a parser may raise on garbage
            return Undecodable(
                f"the request's bytes do not decode as {expected} ({type(e).__name__}: {e}); "
                f"send a serialized {expected}"
            )

    return deserializer


def _abort(context: grpc.ServicerContext, request: Undecodable):
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


def _checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if type(request) is Undecodable:
            _abort(context, request)
        yield request


def checked_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` with a deserializer that never raises and a behaviour that refuses what it could
    not decode."""
    replace: dict[str, Any] = {"request_deserializer": _safe(handler.request_deserializer)}
    for kind in ("unary_unary", "unary_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:

            def unary(request, context, behaviour=behaviour):
                if type(request) is Undecodable:
                    _abort(context, request)
                return behaviour(request, context)

            replace[kind] = unary
    for kind in ("stream_unary", "stream_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:

            def streaming(requests, context, behaviour=behaviour):
                return behaviour(_checked(requests, context), context)

            replace[kind] = streaming
    return handler._replace(**replace)


class Registrar:
    """Stands for `server` in the generated `add_*Servicer_to_server` functions (and in those of
    grpc's health and reflection packages), registering each method with `checked_handler`."""

    def __init__(self, server: grpc.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        """The generated functions call this, then `add_registered_method_handlers` with the same
        methods: registered there, checked, rather than here."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        checked = {name: checked_handler(handler) for name, handler in handlers.items()}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, checked),)
        )
        self.server.add_registered_method_handlers(service, checked)
