"""Bytes that are not the method's request message (finding 5): INVALID_ARGUMENT naming the
message expected, no traceback in the log, and the server keeps serving; Health/List answers."""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2
from lifelong.v1 import lifelong_pb2 as pb

GARBAGE = b"\x0a\xff\xff\xff\xff"  # field 1, length-delimited, a length past the end


def raw_unary(served, method: str):
    return served.channel.unary_unary(method)  # bytes in, bytes out: no (de)serializer


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("/lifelong.v1.PredictionService/Predict", "lifelong.v1.PredictRequest"),
        ("/lifelong.v1.PredictionService/PredictBatch", "lifelong.v1.PredictBatchRequest"),
        ("/lifelong.v1.LearningService/Learn", "lifelong.v1.LearnRequest"),
        ("/lifelong.v1.ModelService/GetModelInfo", "lifelong.v1.GetModelInfoRequest"),
        ("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest"),
    ],
)
def test_undecodable_bytes_are_invalid_argument_without_a_traceback(serve, caplog, method, message):
    served = serve()
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.RpcError) as error:
        raw_unary(served, method)(GARBAGE, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(f"the request's bytes do not decode as {message}")
    assert not [r for r in caplog.records if r.exc_info or "deserializ" in r.getMessage()]
    served.health.Check(health_pb2.HealthCheckRequest())  # still serving


def test_an_undecodable_message_ends_a_stream_at_it(serve, caplog):
    served = serve()
    good = pb.LearnStreamRequest(
        sample=pb.Sample(features=pb.Features(named={"x": 1.0}), label=pb.Label(text="a"))
    ).SerializeToString()
    stream = served.channel.stream_unary("/lifelong.v1.LearningService/LearnStream")
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.RpcError) as error:
        stream(iter([good, GARBAGE, good]), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lifelong.v1.LearnStreamRequest" in error.value.details()
    assert not [r for r in caplog.records if r.exc_info]
    assert served.host.samples_learned == 1  # the one before it


def test_health_list_names_every_service(serve):
    served = serve()
    answer = served.health.List(health_pb2.HealthListRequest(), timeout=10)
    assert set(answer.statuses) >= {"", "lifelong.v1.PredictionService"}
    assert {s.status for s in answer.statuses.values()} == {health_pb2.HealthCheckResponse.SERVING}
