"""gRPC serving: the lifelong.v1 servicers, health checking, reflection and the server."""

from lifelong.serving.server import GrpcServer

__all__ = ["GrpcServer"]
