"""A test double of the Lifelong server: a real gRPC server on a free localhost port.

Its "model" is deliberately trivial so tests can compute the expected answer: the score of an
example is the sum of its feature values, P("pos") = sigmoid(score). Responses are built from
protobuf directly (not with lifelong.client.convert), so the client's decoding is checked
independently. Knobs: ``errors`` (status codes to fail with, per method, consumed one per call),
``delay`` (seconds to wait before answering), ``tamper`` (edits each response before it is sent),
``regression`` (matrix answers as a regressor's: the score itself).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from lifelong.client import LifelongClient
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc


def fake_prediction(features: pb.Features) -> pb.Prediction:
    score = sum(features.named.values()) + sum(features.dense)
    p = 1 / (1 + math.exp(-score))
    pos, neg = pb.Label(text="pos"), pb.Label(text="neg")
    ranked = [(pos, p), (neg, 1 - p)] if p >= 0.5 else [(neg, 1 - p), (pos, p)]
    return pb.Prediction(
        label=ranked[0][0],
        probabilities=[pb.ClassProbability(label=lab, probability=q) for lab, q in ranked],
    )


def fake_matrix_predictions(matrix: pb.Matrix, regression: bool) -> pb.MatrixPredictions:
    """The same model for a matrix, classes in the order neg, pos."""
    values, k = list(matrix.values), matrix.columns
    scores = [sum(values[i : i + k]) for i in range(0, len(values), k)] if k else []
    if regression:
        return pb.MatrixPredictions(values=scores)
    probabilities = []
    for score in scores:
        p = 1 / (1 + math.exp(-score))
        probabilities += [1 - p, p]
    return pb.MatrixPredictions(
        classes=[pb.Label(text="neg"), pb.Label(text="pos")], probabilities=probabilities
    )


class FakeServer(
    pb_grpc.PredictionServiceServicer,
    pb_grpc.LearningServiceServicer,
    pb_grpc.ModelServiceServicer,
    pb_grpc.AdminServiceServicer,
):
    def __init__(self) -> None:
        self.model_version = 42
        self.samples_learned = 0
        self.errors: dict[str, list[tuple[grpc.StatusCode, str]]] = defaultdict(list)
        self.delay = 0.0
        self.tamper: Callable[[Any], None] | None = None
        self.calls: dict[str, int] = defaultdict(int)
        self.received: list[Any] = []  # requests (or stream messages), in arrival order
        self.stream_closed = threading.Event()  # set when a PredictStream call ends
        self.regression = False  # matrix answers as a regressor's

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method] += 1
        time.sleep(self.delay)
        if self.errors[method]:
            context.abort(*self.errors[method].pop(0))

    def _send(self, response: Any) -> Any:
        if self.tamper is not None:
            self.tamper(response)
        return response

    def Predict(self, request, context):
        self._enter("Predict", context)
        self.received.append(request)
        return self._send(
            pb.PredictResponse(
                prediction=fake_prediction(request.features), model_version=self.model_version
            )
        )

    def PredictBatch(self, request, context):
        self._enter("PredictBatch", context)
        self.received.append(request)
        response = pb.PredictBatchResponse(
            predictions=[fake_prediction(f) for f in request.examples],
            model_version=self.model_version,
        )
        if request.HasField("matrix"):
            response.matrix_predictions.CopyFrom(
                fake_matrix_predictions(request.matrix, self.regression)
            )
        return self._send(response)

    def PredictStream(self, request_iterator, context):
        try:
            self._enter("PredictStream", context)
            for request in request_iterator:
                self.received.append(request)
                self.model_version += 1  # the model learns between answers
                response = pb.PredictStreamResponse(
                    request_id=request.request_id,
                    predictions=[fake_prediction(f) for f in request.examples],
                    model_version=self.model_version,
                )
                if request.HasField("matrix"):
                    response.matrix_predictions.CopyFrom(
                        fake_matrix_predictions(request.matrix, self.regression)
                    )
                yield self._send(response)
        finally:
            self.stream_closed.set()

    def Learn(self, request, context):
        self._enter("Learn", context)
        self.received.append(request)
        self.samples_learned += 1
        return pb.LearnResponse(samples_learned=self.samples_learned)

    def LearnStream(self, request_iterator, context):
        self._enter("LearnStream", context)
        accepted = 0
        for request in request_iterator:
            self.received.append(request)
            accepted += 1
            self.samples_learned += 1
        return pb.LearnStreamResponse(
            samples_accepted=accepted, samples_learned=self.samples_learned
        )

    def GetModelInfo(self, request, context):
        self._enter("GetModelInfo", context)
        return pb.GetModelInfoResponse(
            task=pb.TASK_CLASSIFICATION,
            feature_names=["x1", "x2"],
            classes=[pb.Label(text="pos"), pb.Label(text="neg")],
            samples_learned=self.samples_learned,
            model_version=self.model_version,
            config_json='{"hidden": [64, 64], "optimizer": "adam"}',
        )

    def GetPlasticityStats(self, request, context):
        self._enter("GetPlasticityStats", context)
        return pb.GetPlasticityStatsResponse(
            layers=[
                pb.LayerStats(
                    layer=i,
                    width=64,
                    dead_fraction=0.125 * (i + 1),
                    dormant_fraction=0.25,
                    tau_dormant_fraction=0.5,
                    effective_rank=40.5 - i,
                    mean_abs_weight=0.0625,
                    units_replaced=7 + i,
                )
                for i in range(2)
            ],
            gradient_norm=1.5,
            mean_abs_weight=0.03125,
            prequential_score=0.875,
            prequential_loss=0.375,
            drifts_detected=3,
            samples_learned=self.samples_learned,
        )

    def Checkpoint(self, request, context):
        self._enter("Checkpoint", context)
        return pb.CheckpointResponse(
            path=f"/var/lib/lifelong/ckpt-{self.samples_learned}.bin",
            samples_learned=self.samples_learned,
        )


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def address(fake: FakeServer) -> Iterator[str]:
    """``host:port`` of a running server backed by ``fake``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for add in (
        pb_grpc.add_PredictionServiceServicer_to_server,
        pb_grpc.add_LearningServiceServicer_to_server,
        pb_grpc.add_ModelServiceServicer_to_server,
        pb_grpc.add_AdminServiceServicer_to_server,
    ):
        add(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def client(address: str) -> Iterator[LifelongClient]:
    with LifelongClient(address) as client:
        yield client
