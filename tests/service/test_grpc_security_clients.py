"""Clients of a TLS server with tokens: the Python client, the `lifelong` CLI (TLS, mTLS, the
token by flag and by LIFELONG_TOKEN, `lifelong token`) and grpcurl, a client nobody here wrote."""

from __future__ import annotations

import io
import json
import random
import subprocess

import pytest
from lifelong.auth import token_hash
from lifelong.cli import main
from lifelong.client import (
    LifelongClient,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    tls_credentials,
)
from testsupport import CertificateAuthority, line_sample

TOKENS = f"predict {token_hash('p-token')}\nlearn,predict {token_hash('l-token')}"


@pytest.fixture
def ca(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def served(serve, ca):
    """A TLS server with tokens that has learned 30 samples."""
    cert, key = ca.issue("localhost")
    served = serve(tls_cert_file=cert, tls_key_file=key, auth_tokens=TOKENS)
    with LifelongClient(
        served.target, credentials=tls_credentials(ca_file=ca.cert_file), token="l-token"
    ) as client:
        rng = random.Random(0)
        client.learn_stream(line_sample(rng) for _ in range(30))
    return served


def test_the_python_client_connects_with_tls_and_a_token(served, ca):
    credentials = tls_credentials(ca_file=ca.cert_file)
    with LifelongClient(served.target, credentials=credentials, token="p-token") as client:
        assert client.predict({"x0": 0.2, "x1": 0.7}).model_version == 30
        assert client.stats().samples_learned == 30
        with pytest.raises(PermissionDeniedError, match="needs the role 'learn'"):
            client.learn({"x0": 0.2}, "above")
    anonymous = LifelongClient(served.target, credentials=credentials)
    with anonymous, pytest.raises(UnauthenticatedError, match="needs a bearer token"):
        anonymous.predict({"x0": 0.2})
    plaintext = LifelongClient(served.target, token="p-token")
    with plaintext, pytest.raises(UnavailableError):
        plaintext.predict({"x0": 0.2})


def test_the_python_client_with_a_client_certificate(serve, ca, tmp_path):
    cert, key = ca.issue("localhost")
    clients = CertificateAuthority(tmp_path, "clients")
    client_cert, client_key = clients.issue("a-client", client=True)
    served = serve(tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=clients.cert_file)
    mutual = tls_credentials(ca_file=ca.cert_file, cert_file=client_cert, key_file=client_key)
    with LifelongClient(served.target, credentials=mutual) as client:
        assert client.model_info().samples_learned == 0
    server_only = LifelongClient(served.target, credentials=tls_credentials(ca_file=ca.cert_file))
    with server_only, pytest.raises(UnavailableError):
        server_only.model_info()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit.value.code, out, err


def test_the_cli_connects_with_tls_and_a_token(served, ca, capsys, monkeypatch):
    target = ("--target", served.target, "--ca-file", str(ca.cert_file))
    features = ("--features", '{"x0": 0.2, "x1": 0.7}')
    status, out, err = cli(capsys, "predict", *target, "--token", "p-token", *features)
    assert status == 0, err
    assert json.loads(out)["model_version"] == 30

    status, out, err = cli(capsys, "predict", *target, *features)
    assert status == 1
    assert "UNAUTHENTICATED" in err and "--token or LIFELONG_TOKEN" in err

    monkeypatch.setenv("LIFELONG_TOKEN", "p-token")
    status, out, err = cli(capsys, "stats", *target)
    assert status == 0, err
    assert json.loads(out)["samples_learned"] == 30

    status, out, err = cli(capsys, "stats", "--target", served.target, "--cert-file", "x.pem")
    assert status == "lifelong stats: cert_file and key_file go together: pass both, or neither"


def test_the_cli_with_a_client_certificate(serve, ca, tmp_path, capsys):
    cert, key = ca.issue("localhost")
    clients = CertificateAuthority(tmp_path, "clients")
    client_cert, client_key = clients.issue("cli", client=True)
    served = serve(tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=clients.cert_file)
    tls = ("--target", served.target, "--ca-file", str(ca.cert_file))
    mutual = ("--cert-file", str(client_cert), "--key-file", str(client_key))
    status, _, err = cli(capsys, "stats", *tls, *mutual)
    assert status == 0, err
    status, _, err = cli(capsys, "stats", *tls)
    assert status == 1
    assert "UNAVAILABLE" in err


def test_lifelong_token_makes_a_token_the_server_accepts(serve, capsys, monkeypatch):
    status, out, _ = cli(capsys, "token", "--roles", "predict,learn")
    assert status == 0
    token, line = (text for text in out.splitlines() if not text.startswith("#"))
    served = serve(auth_tokens=line)
    with LifelongClient(served.target, token=token) as client:
        assert client.learn({"x0": 0.1}, "above") == 1
        with pytest.raises(PermissionDeniedError, match="needs the role 'admin'"):
            client.checkpoint()
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    status, out, _ = cli(capsys, "token", "--roles", "predict,learn", "--stdin")
    assert out == line + "\n"
    status, _, _ = cli(capsys, "token", "--roles", "root")
    assert "unknown role(s) root" in status  # sys.exit's message


@pytest.mark.slow  # the first run builds grpcurl
def test_grpcurl_predicts_over_tls_with_a_token(grpcurl, served, ca):
    def grpcurl_call(*args: str) -> subprocess.CompletedProcess:
        command = [str(grpcurl), "-cacert", str(ca.cert_file), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    request = json.dumps({"features": {"named": {"x0": 0.2, "x1": 0.7}}})
    method = "lifelong.v1.PredictionService/Predict"
    auth = ("-H", "authorization: Bearer p-token")
    answer = grpcurl_call(*auth, "-d", request, served.target, method)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["model_version"] == "30"

    refused = grpcurl_call("-d", request, served.target, method)
    assert refused.returncode != 0
    assert "Code: Unauthenticated" in refused.stderr
    learn = grpcurl_call(*auth, "-d", "{}", served.target, "lifelong.v1.LearningService/Learn")
    assert "Code: PermissionDenied" in learn.stderr
    assert "needs the role 'learn'; this token has: predict" in learn.stderr

    plaintext = subprocess.run(
        [str(grpcurl), "-plaintext", *auth, "-d", request, served.target, method],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plaintext.returncode != 0
