"""Helpers shared by the test folders (on pytest's pythonpath): free ports, waiting, small real
learners, a learnable stream, real gRPC servers and real certificates. Fixtures stay in the
conftest files."""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2_grpc
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor
from lifelong.serving import GrpcServer
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

DEADLINE = 120.0  # seconds before a wait gives up: a hang, not a slow machine


def wait_for(condition: Callable[[], object], what: str, deadline: float = DEADLINE):
    """Poll `condition` until it returns something truthy and return that; an OSError (a server
    not listening yet) counts as not yet."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def small_learner(task: str = "classification", **config):
    """A real learner, small enough for fast tests."""
    model = LifelongClassifier if task == "classification" else LifelongRegressor
    return model(LearnerConfig(**{"hidden": (16, 16), "telemetry_window": 100, **config}))


def line_sample(rng: random.Random) -> tuple[dict[str, float], str]:
    """A learnable stream: which side of the line x0 + 2 x1 = 0 a point is on."""
    x = {"x0": rng.uniform(-1, 1), "x1": rng.uniform(-1, 1)}
    return x, "above" if x["x0"] + 2 * x["x1"] > 0 else "below"


def sample_proto(features: dict[str, float] | list[float], label) -> pb.Sample:
    named = isinstance(features, dict)
    return pb.Sample(
        features=pb.Features(named=features) if named else pb.Features(dense=features),
        label=pb.Label(text=label) if isinstance(label, str) else pb.Label(number=label),
    )


@dataclass
class Served:
    """A started server, its host and stubs over one channel."""

    host: ModelHost
    server: GrpcServer
    channel: grpc.Channel
    target: str
    predictions: pb_grpc.PredictionServiceStub = field(init=False)
    learning: pb_grpc.LearningServiceStub = field(init=False)
    model: pb_grpc.ModelServiceStub = field(init=False)
    admin: pb_grpc.AdminServiceStub = field(init=False)
    health: health_pb2_grpc.HealthStub = field(init=False)

    def __post_init__(self) -> None:
        self.predictions = pb_grpc.PredictionServiceStub(self.channel)
        self.learning = pb_grpc.LearningServiceStub(self.channel)
        self.model = pb_grpc.ModelServiceStub(self.channel)
        self.admin = pb_grpc.AdminServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def learn(self, samples) -> pb.LearnStreamResponse:
        """Learn (features, label) pairs over LearnStream."""
        return self.learning.LearnStream(
            pb.LearnStreamRequest(sample=sample_proto(x, y)) for x, y in samples
        )


class Servers:
    """Starts real servers on free ports; `close()` stops them all."""

    def __init__(self) -> None:
        self.started: list[Served] = []

    def start(
        self,
        host: ModelHost | None = None,
        *,
        task="classification",
        credentials: grpc.ChannelCredentials | None = None,
        **settings,
    ) -> Served:
        """A server for `host` (default: a fresh small learner, snapshot after every sample);
        its stubs' channel uses `credentials` (TLS) if given."""
        if host is None:
            host = ModelHost(small_learner(task), refresh_every_samples=1)
        settings = Settings(task=task, grpc_address="127.0.0.1:0", metrics_port=0, **settings)
        server = GrpcServer(host, settings)
        server.start()
        target = f"127.0.0.1:{server.port}"
        channel = (
            grpc.insecure_channel(target)
            if credentials is None
            else grpc.secure_channel(target, credentials)
        )
        served = Served(host, server, channel, target)
        self.started.append(served)
        return served

    def close(self) -> None:
        for served in self.started:
            served.channel.close()
            served.server.stop(0)


class CertificateAuthority:
    """A real certificate authority made for a test: `issue()` signs server and client
    certificates and writes them as PEM files (`cryptography`, no openssl command)."""

    def __init__(self, directory: Path, name: str = "test-ca") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
        self.certificate = (
            _builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.cert_file = self._write(f"{name}.pem", self.certificate)

    def issue(self, common_name: str, *, client: bool = False) -> tuple[Path, Path]:
        """(certificate file, key file) for `common_name`: a server certificate for localhost
        and 127.0.0.1, or a client certificate."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
        usage = (
            x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
            if client
            else (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        )
        builder = _builder(subject, self.certificate.subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if not client:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = f"{self.name}-{common_name}"
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key_file = self.directory / f"{stem}.key"
        key_file.write_bytes(key_pem)
        return self._write(f"{stem}.pem", certificate), key_file

    def _write(self, name: str, certificate) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.directory / name
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return path


def _builder(subject, issuer, public_key):
    import datetime

    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
