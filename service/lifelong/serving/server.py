"""The gRPC server: the four lifelong.v1 services (a prediction replica: PredictionService
alone), standard health checking and reflection.

Health (`grpc.health.v1.Health`) answers SERVING for "" and every service once started (a replica:
once it has read a snapshot), and NOT_SERVING from the start of shutdown; LearningService alone
says NOT_SERVING while a Kafka learner holds no partition (`set_learning`). Reflection lets
`grpcurl` list and call the services without the .proto files (`grpc_reflection`). Both are open
to anyone who can connect; every other call goes through the roles' interceptor
(`lifelong.serving.auth`).
The port speaks TLS when a certificate is configured, and refuses to open on an address other than
loopback without TLS or tokens unless told to (`lifelong.serving.tls`).

Every method is registered through `lifelong.serving.decoding.Registrar`: bytes that do not decode
as its request message are INVALID_ARGUMENT, without a traceback in the log. Health implements
`List` too (grpcio-health-checking's servicer answers it UNIMPLEMENTED).

`grpc_health_address` adds a second port, plaintext and without tokens, serving the same health
servicer and nothing else: Kubernetes' gRPC probes and Docker's HEALTHCHECK speak neither TLS
nor tokens, and whether the server is serving is all that port tells.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.ingest.forward import SampleForwarder
from lifelong.serving.auth import AuthInterceptor, authorizer
from lifelong.serving.decoding import Registrar
from lifelong.serving.learning import LearningServicer
from lifelong.serving.model import AdminServicer, ModelServicer
from lifelong.serving.predictions import PredictionServicer, PredictionSource
from lifelong.serving.tls import check_listening, is_loopback, server_credentials
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
PREDICTION_SERVICE = pb.DESCRIPTOR.services_by_name["PredictionService"].full_name
LEARNING_SERVICE = pb.DESCRIPTOR.services_by_name["LearningService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING


class HealthServicer(health.HealthServicer):
    """grpc's health servicer, with `List`: every service's status."""

    def List(self, request, context) -> health_pb2.HealthListResponse:
        with self._lock:
            statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


class ReflectionServicer(reflection.ReflectionServicer):
    """grpc's reflection servicer, which also resolves a method's symbol
    (`lifelong.v1.PredictionService.Predict`) to its service's file: Python's descriptor pool
    does not, so `grpcurl describe` of a method and ghz in reflection mode failed with "Symbol
    not found" (grpc/grpc#34743, bojand/ghz#419)."""

    def _file_containing_symbol(self, request, fully_qualified_name):
        try:
            self._pool.FindFileContainingSymbol(fully_qualified_name)
        except KeyError:
            try:
                method = self._pool.FindMethodByName(fully_qualified_name)
            except KeyError:
                pass  # not found: the base class answers NOT_FOUND
            else:
                fully_qualified_name = method.containing_service.full_name
        return super()._file_containing_symbol(request, fully_qualified_name)


class GrpcServer:
    """The server for `host`, bound to `settings.grpc_address` (see `port`), not yet started.

    `predictions_only`: PredictionService alone, answered from `host`, any `PredictionSource`
    (a prediction replica's snapshot reader). `forward`: where LearningService sends samples
    when the model learns from Kafka (`lifelong.ingest.forward`).
    """

    def __init__(
        self,
        host: ModelHost | PredictionSource,
        settings: Settings,
        *,
        predictions_only: bool = False,
        forward: SampleForwarder | None = None,
    ) -> None:
        check_listening(settings, settings.grpc_address)
        credentials = server_credentials(settings)
        calls = authorizer(settings)
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="grpc"),
            # No tokens, nothing to check: no interceptor, no cost on every call.
            interceptors=[AuthInterceptor(calls)] if calls.table is not None else [],
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                # A second server on the same port must fail, not silently share the traffic.
                ("grpc.so_reuseport", 0),
            ],
        )
        limits = {"max_features": settings.max_features}
        registrar = Registrar(self.server)  # undecodable requests: INVALID_ARGUMENT
        pb_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(
                host, host.metrics, **limits, max_batch_rows=settings.max_batch_rows
            ),
            registrar,
        )
        self.services: tuple[str, ...] = (PREDICTION_SERVICE,)
        if not predictions_only:
            pb_grpc.add_LearningServiceServicer_to_server(
                LearningServicer(host, **limits, forward=forward), registrar
            )
            pb_grpc.add_ModelServiceServicer_to_server(ModelServicer(host), registrar)
            pb_grpc.add_AdminServiceServicer_to_server(AdminServicer(host), registrar)
            self.services = SERVICES
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)
        if settings.grpc_reflection:
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
                ReflectionServicer((*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME)),
                registrar,
            )
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(settings.grpc_address)
            else:
                self.port = self.server.add_secure_port(settings.grpc_address, credentials)
        except RuntimeError as e:
            raise OSError(f"cannot listen for gRPC on {settings.grpc_address}: {e}") from None
        self.address = settings.grpc_address
        self.health_server: grpc.Server | None = None
        self.health_port: int | None = None
        if settings.grpc_health_address is not None:
            self.health_server = grpc.server(
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="grpc-health"),
                options=[("grpc.so_reuseport", 0)],
            )
            health_pb2_grpc.add_HealthServicer_to_server(self.health, Registrar(self.health_server))
            try:
                self.health_port = self.health_server.add_insecure_port(
                    settings.grpc_health_address
                )
            except RuntimeError as e:
                raise OSError(
                    f"cannot listen for gRPC health on {settings.grpc_health_address}: {e}"
                ) from None
        if credentials is None and settings.auth_enabled and not is_loopback(self.address):
            log.warning(
                "bearer tokens over plaintext on %s: anyone on the path can read and reuse them; "
                "set tls_cert_file and tls_key_file",
                self.address,
            )
        transport = "mTLS" if settings.tls_client_ca_file else "TLS"
        self.security = "{}, {}".format(
            "plaintext" if credentials is None else transport,
            "tokens" if settings.auth_enabled else "no tokens",
        )

    def start(self, *, serving: bool = True) -> None:
        """Start; health says SERVING, or NOT_SERVING until `set_serving()` if not `serving`."""
        self.server.start()
        if self.health_server is not None:
            self.health_server.start()
            log.info("gRPC health (plaintext, health only) on port %d", self.health_port)
        self._set_health(SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("gRPC listening on %s (port %d; %s)", self.address, self.port, self.security)

    def set_serving(self) -> None:
        """Health says SERVING (not once shutdown began: the health servicer ignores it then)."""
        self._set_health(SERVING)

    def set_learning(self, learning: bool) -> None:
        """The health of LearningService alone: NOT_SERVING while the Kafka learner waits for
        partitions (predictions, "" and the other services are unaffected)."""
        if LEARNING_SERVICE in self.services:
            status = SERVING if learning else health_pb2.HealthCheckResponse.NOT_SERVING
            self.health.set(LEARNING_SERVICE, status)

    def _set_health(self, status: int) -> None:
        for service in ("", *self.services):
            self.health.set(service, status)

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, give running ones `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.health_server is not None:
            self.health_server.stop(0).wait()
