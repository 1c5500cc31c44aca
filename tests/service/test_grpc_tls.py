"""TLS on the gRPC port, with real certificates made here: plaintext refused, mTLS refusing
clients without a certificate from the CA, a certificate replaced on disk picked up at the next
connection, and the rule about listening beyond loopback."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lifelong.config import ConfigError, Settings
from lifelong.serving.tls import check_listening
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from testsupport import CertificateAuthority, line_sample

SERVING = health_pb2.HealthCheckResponse.SERVING
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ca(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest()
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status


def trusting(ca: CertificateAuthority, client: tuple | None = None) -> grpc.ChannelCredentials:
    cert, key = client or (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failure:
        health(channel)
    return failure.value.code()


def test_a_tls_server_refuses_a_plaintext_client_and_answers_a_tls_one(serve, ca):
    cert, key = ca.issue("localhost")
    served = serve(credentials=trusting(ca), tls_cert_file=cert, tls_key_file=key)
    assert health(served.channel) == SERVING
    served.learn(line_sample(random.Random(0)) for _ in range(5))
    assert served.host.samples_learned == 5
    with grpc.insecure_channel(served.target) as plaintext:
        assert refused(plaintext) == grpc.StatusCode.UNAVAILABLE
    # nor does a client that trusts another CA accept the server
    with grpc.secure_channel(
        served.target, trusting(CertificateAuthority(ca.directory, "other"))
    ) as c:
        assert refused(c) == grpc.StatusCode.UNAVAILABLE


def test_mtls_refuses_clients_without_a_certificate_from_the_client_ca(serve, ca, tmp_path):
    cert, key = ca.issue("localhost")
    client_ca = CertificateAuthority(tmp_path, "clients")
    served = serve(
        credentials=trusting(ca, client_ca.issue("good-client", client=True)),
        tls_cert_file=cert,
        tls_key_file=key,
        tls_client_ca_file=client_ca.cert_file,
    )
    assert health(served.channel) == SERVING
    with grpc.secure_channel(served.target, trusting(ca)) as no_certificate:
        assert refused(no_certificate) == grpc.StatusCode.UNAVAILABLE
    stranger = CertificateAuthority(tmp_path, "stranger").issue("bad-client", client=True)
    with grpc.secure_channel(served.target, trusting(ca, stranger)) as wrong_ca:
        assert refused(wrong_ca) == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_replaced_on_disk_is_used_from_the_next_connection(serve, ca, tmp_path):
    cert, key = ca.issue("localhost")
    served = serve(credentials=trusting(ca), tls_cert_file=cert, tls_key_file=key)
    assert health(served.channel) == SERVING  # opened with the first certificate

    renewed = CertificateAuthority(tmp_path, "renewed")
    new_cert, new_key = renewed.issue("localhost")
    # As cert-manager and Secret volumes do: whole files replaced, not rewritten in place.
    os.replace(new_key, key)
    os.replace(new_cert, cert)

    with grpc.secure_channel(served.target, trusting(renewed)) as fresh:
        assert health(fresh) == SERVING
    with grpc.secure_channel(served.target, trusting(ca)) as old_trust:
        assert refused(old_trust) == grpc.StatusCode.UNAVAILABLE
    assert health(served.channel) == SERVING  # the open connection goes on


def test_a_broken_replacement_is_refused_and_the_previous_certificate_kept(serve, ca, caplog):
    cert, key = ca.issue("localhost")
    served = serve(credentials=trusting(ca), tls_cert_file=cert, tls_key_file=key)
    _, other_key = ca.issue("other")
    os.replace(other_key, key)  # a key that does not match the certificate
    with grpc.secure_channel(served.target, trusting(ca)) as fresh:
        assert health(fresh) == SERVING
    assert "cannot be used, keeping the previous" in caplog.text


def test_missing_or_unmatched_files_fail_at_start_with_the_reason(serve, ca, tmp_path):
    cert, _ = ca.issue("localhost")
    with pytest.raises(ConfigError, match="TLS: cannot use"):
        serve(tls_cert_file=cert, tls_key_file=tmp_path / "absent.key")
    with pytest.raises(ConfigError, match="go together"):
        Settings(tls_cert_file=cert)
    with pytest.raises(ConfigError, match="tls_client_ca_file asks clients"):
        Settings(tls_client_ca_file=ca.cert_file)


@pytest.mark.parametrize("address", ["[::]:50051", "0.0.0.0:50051", "10.1.2.3:50051"])
def test_beyond_loopback_plaintext_and_open_calls_must_be_asked_for(address, ca):
    with pytest.raises(ConfigError, match=r"TLS is off: set tls_cert_file .* grpc_insecure = true"):
        check_listening(Settings(), address)
    with pytest.raises(ConfigError, match="no tokens are configured: set auth_tokens_file"):
        check_listening(Settings(grpc_insecure=True), address)
    check_listening(Settings(grpc_insecure=True, auth_disabled=True), address)
    cert, key = ca.issue("localhost")
    tls = Settings(tls_cert_file=cert, tls_key_file=key, auth_tokens="predict " + "0" * 64)
    check_listening(tls, address)


@pytest.mark.parametrize("address", ["localhost:50051", "127.0.0.1:0", "[::1]:50051"])
def test_loopback_stays_open_by_default(address):
    check_listening(Settings(), address)


def test_a_plaintext_health_port_for_probes_serves_health_alone(serve, ca):
    cert, key = ca.issue("localhost")
    served = serve(
        credentials=trusting(ca),
        tls_cert_file=cert,
        tls_key_file=key,
        auth_tokens="predict " + "0" * 64,
        grpc_health_address="127.0.0.1:0",
    )
    target = f"127.0.0.1:{served.server.health_port}"
    with grpc.insecure_channel(target) as probe:
        assert health(probe) == SERVING  # no TLS, no token
        with pytest.raises(grpc.RpcError) as failure:
            pb_grpc.PredictionServiceStub(probe).Predict(pb.PredictRequest(), timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED

    # the image's HEALTHCHECK, as Docker runs it, against that port
    line = next(
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip().startswith('CMD ["python"')
    )
    command = json.loads(line.removeprefix("CMD "))
    command[0] = sys.executable
    env = {
        **os.environ,
        "LIFELONG_GRPC_ADDRESS": served.target,
        "LIFELONG_GRPC_HEALTH_ADDRESS": f"[::]:{served.server.health_port}",
    }
    check = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    served.server.stop(0)
    check = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode != 0
