"""grpcurl, without any .proto file: reflection lists the services; health and Predict answer."""

import json
import random
import subprocess

import pytest
from testsupport import line_sample


def grpcurl_call(grpcurl, served, *args: str) -> str:
    command = [str(grpcurl), "-plaintext", *args[:-1], served.target, args[-1]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow  # the first run builds grpcurl
def test_grpcurl_lists_and_calls_the_services(grpcurl, serve):
    served = serve()
    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(30))

    services = grpcurl_call(grpcurl, served, "list").split()
    for name in ("PredictionService", "LearningService", "ModelService", "AdminService"):
        assert f"lifelong.v1.{name}" in services
    assert "grpc.health.v1.Health" in services

    health = json.loads(grpcurl_call(grpcurl, served, "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}

    request = json.dumps({"features": {"named": {"x0": 0.2, "x1": 0.7}}})
    answer = json.loads(
        grpcurl_call(grpcurl, served, "-d", request, "lifelong.v1.PredictionService/Predict")
    )
    assert answer["model_version"] == "30"  # uint64 is a string in protobuf JSON
    assert answer["prediction"]["label"]["text"] in ("above", "below")
    assert len(answer["prediction"]["probabilities"]) == 2


def describe(grpcurl, served, symbol: str) -> subprocess.CompletedProcess:
    command = [str(grpcurl), "-plaintext", served.target, "describe", symbol]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # the first run builds grpcurl
def test_grpcurl_describes_methods_by_reflection(grpcurl, serve):
    """Finding 6: Python's reflection could not resolve a method's symbol (grpc/grpc#34743), so
    `grpcurl describe` of a method (and ghz in reflection mode) failed with "Symbol not found"."""
    served = serve()
    for method, request in (
        ("lifelong.v1.PredictionService.Predict", "lifelong.v1.PredictRequest"),
        ("lifelong.v1.LearningService.LearnStream", "stream .lifelong.v1.LearnStreamRequest"),
        ("grpc.health.v1.Health.Check", "grpc.health.v1.HealthCheckRequest"),
    ):
        result = describe(grpcurl, served, method)
        assert result.returncode == 0, result.stderr
        assert f"{method} is a method" in result.stdout
        assert f"( {request if request.startswith('stream') else '.' + request} )" in result.stdout
    result = describe(grpcurl, served, "lifelong.v1.PredictionService.Nothing")
    assert result.returncode != 0 and "Symbol not found" in result.stderr
