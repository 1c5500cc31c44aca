"""The blocking client."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from lifelong.client.convert import (
    batch_from_proto,
    checkpoint_entry_from_proto,
    checkpoint_from_proto,
    features_to_proto,
    frozen_submodules_from_proto,
    learn_stream_result_from_proto,
    learning_state_from_proto,
    matrix_from_proto,
    matrix_to_proto,
    model_info_from_proto,
    model_replaced_from_proto,
    prediction_from_proto,
    sample_to_proto,
    stats_from_proto,
)
from lifelong.client.errors import ProtocolError, error_from_rpc, status_code
from lifelong.client.results import (
    BatchPrediction,
    CheckpointEntry,
    CheckpointResult,
    FeatureValues,
    FrozenSubmodules,
    LabelValue,
    LearningState,
    LearnStreamResult,
    MatrixPrediction,
    ModelInfo,
    ModelReplaced,
    PlasticityStats,
    Prediction,
)
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

_T = TypeVar("_T")
_B = TypeVar("_B")

_FIRST_BACKOFF = 0.05  # seconds; doubles per retry
_MAX_BACKOFF = 1.0


class LifelongClient:
    """Predictions from, and samples for, a Lifelong server. Thread-safe: share one per process.

    Unary calls time out after ``timeout`` seconds (``None``: never) unless the call passes its
    own; streams have no deadline unless given one. With ``retries``, idempotent calls
    (``predict``, ``predict_batch``, ``model_info``, ``stats``) are retried on UNAVAILABLE with
    a short exponential backoff, within the same deadline. Failures raise ``LifelongError``
    subclasses (see ``lifelong.client.errors``).

    Over TLS: ``credentials=tls_credentials(ca_file=..., cert_file=..., key_file=...)`` (the
    certificate and key for mutual TLS). ``token``: a bearer token, sent with every call as the
    metadata ``authorization: Bearer <token>`` (send it over TLS: in plaintext anyone on the path
    can read it).

    Example, against a server on localhost:50051::

        with LifelongClient("localhost:50051", retries=2) as client:
            prediction = client.predict({"x1": 0.3, "x2": -1.0})
            print(prediction.label, prediction.probabilities, prediction.model_version)
            client.learn({"x1": 0.3, "x2": -1.0}, "spam")
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 1.0,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        retries: int = 0,
        token: str | None = None,
    ) -> None:
        """Connect to ``target`` ("host:port"), over TLS if ``credentials`` are given.

        Pass ``channel`` to use one you configured (``target`` then only names the server in
        error messages); the client does not close a channel it did not open.
        """
        if channel is not None and credentials is not None:
            raise ValueError("pass credentials or a channel, not both")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self._target = target
        self._timeout = timeout
        self._retries = retries
        self._owns_channel = channel is None
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        if channel is None:
            channel = (
                grpc.secure_channel(target, credentials)
                if credentials is not None
                else grpc.insecure_channel(target)
            )
        self._channel = channel
        self._prediction = pb_grpc.PredictionServiceStub(channel)
        self._learning = pb_grpc.LearningServiceStub(channel)
        self._model = pb_grpc.ModelServiceStub(channel)
        self._admin = pb_grpc.AdminServiceStub(channel)

    def close(self) -> None:
        """Close the channel if the client opened it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Predictions

    def predict(self, features: FeatureValues, *, timeout: float | None = None) -> Prediction:
        """Predict one example: a dict of named features, or dense values in feature order."""
        request = pb.PredictRequest(features=features_to_proto(features))
        response = self._call("Predict", self._prediction.Predict, request, timeout, retry=True)
        return prediction_from_proto(response.prediction, response.model_version)

    def predict_batch(
        self, rows: Sequence[FeatureValues], *, timeout: float | None = None
    ) -> BatchPrediction:
        """Predict several examples with one model version; one prediction per row, in order.

        For many dense rows, ``predict_matrix`` costs far less per row on both sides.
        """
        request = pb.PredictBatchRequest(examples=[features_to_proto(row) for row in rows])
        response = self._call(
            "PredictBatch", self._prediction.PredictBatch, request, timeout, retry=True
        )
        return self._batch_answer("PredictBatch", response, len(request.examples))

    def predict_matrix(
        self, rows: Iterable[Sequence[float]], *, timeout: float | None = None
    ) -> MatrixPrediction:
        """Predict dense rows sent as one ``Matrix``, with one model version: per row, the
        cheapest way. Every row holds one number per feature, in ``ModelInfo.feature_names``
        order; a 2-D NumPy array works too."""
        matrix = matrix_to_proto(rows)
        response = self._call(
            "PredictBatch",
            self._prediction.PredictBatch,
            pb.PredictBatchRequest(matrix=matrix),
            timeout,
            retry=True,
        )
        return self._matrix_answer("PredictBatch", response, _rows(matrix))

    def predict_stream(
        self, batches: Iterable[Sequence[FeatureValues]], *, timeout: float | None = None
    ) -> Iterator[BatchPrediction]:
        """Predict batches over one long-lived stream; yields one answer per batch, in order.

        ``batches`` is consumed lazily by gRPC as answers are read, so it may be endless.
        ``timeout`` bounds the whole stream (default: no deadline). If ``batches`` raises,
        the answers to the batches before it are yielded, then its exception is re-raised.
        """

        def request(rows: Sequence[FeatureValues]) -> tuple[pb.PredictStreamRequest, int]:
            examples = [features_to_proto(row) for row in rows]
            return pb.PredictStreamRequest(examples=examples), len(examples)

        return self._stream(batches, request, self._batch_answer, timeout)

    def predict_matrix_stream(
        self, batches: Iterable[Iterable[Sequence[float]]], *, timeout: float | None = None
    ) -> Iterator[MatrixPrediction]:
        """``predict_stream`` with each batch's rows sent as a ``Matrix``, as ``predict_matrix``
        sends them; yields one ``MatrixPrediction`` per batch, in order."""

        def request(rows: Iterable[Sequence[float]]) -> tuple[pb.PredictStreamRequest, int]:
            matrix = matrix_to_proto(rows)
            return pb.PredictStreamRequest(matrix=matrix), _rows(matrix)

        return self._stream(batches, request, self._matrix_answer, timeout)

    def _stream(
        self,
        batches: Iterable[_B],
        request: Callable[[_B], tuple[pb.PredictStreamRequest, int]],
        answer: Callable[[str, Any, int], _T],
        timeout: float | None,
    ) -> Iterator[_T]:
        """PredictStream: ``request`` makes a batch's message and counts its rows, ``answer``
        checks and converts the response to it."""
        sent: deque[tuple[int, int]] = deque()  # (request_id, rows), appended by gRPC's thread
        guard = _RequestGuard()

        def requests() -> Iterator[pb.PredictStreamRequest]:
            # Ids start at 1: an answer that forgot to echo its id (0) never matches.
            for request_id, batch in enumerate(batches, start=1):
                message, rows = request(batch)
                message.request_id = request_id
                sent.append((request_id, rows))
                yield message

        responses = self._prediction.PredictStream(
            guard.wrap(requests()), timeout=timeout, metadata=self._metadata
        )
        try:
            for response in responses:
                if not sent:
                    raise self._protocol_error(
                        "PredictStream", f"answer {response.request_id} to no pending request"
                    )
                request_id, rows = sent.popleft()
                if response.request_id != request_id:
                    raise self._protocol_error(
                        "PredictStream",
                        f"answer has request_id {response.request_id}, expected {request_id}",
                    )
                yield answer("PredictStream", response, rows)
        except grpc.RpcError as err:
            raise error_from_rpc(err, "PredictStream", self._target) from err
        finally:
            responses.cancel()  # no-op when finished; ends the call if the caller stops early
        guard.reraise()

    def _batch_answer(self, method: str, response: Any, rows: int) -> BatchPrediction:
        if len(response.predictions) != rows:
            raise self._protocol_error(
                method, f"{len(response.predictions)} predictions for {rows} rows"
            )
        return batch_from_proto(response.predictions, response.model_version)

    def _matrix_answer(self, method: str, response: Any, rows: int) -> MatrixPrediction:
        answer = response.matrix_predictions
        classes = len(answer.classes)
        values = len(answer.probabilities) if classes else len(answer.values)
        if values != rows * max(classes, 1):
            problem = (
                f"{values} probabilities for {rows} rows of {classes} classes"
                if classes
                else f"{values} values for {rows} rows"
            )
            if not response.HasField("matrix_predictions"):
                problem += " (no matrix_predictions: a server older than the matrix form?)"
            raise self._protocol_error(method, problem)
        return matrix_from_proto(answer, response.model_version)

    # Learning

    def learn(
        self, features: FeatureValues, label: LabelValue, *, timeout: float | None = None
    ) -> int:
        """Learn one labelled example; returns the samples learned after it. Never retried."""
        request = pb.LearnRequest(sample=sample_to_proto(features, label))
        response = self._call("Learn", self._learning.Learn, request, timeout, retry=False)
        return response.samples_learned

    def learn_stream(
        self,
        samples: Iterable[tuple[FeatureValues, LabelValue]],
        *,
        timeout: float | None = None,
    ) -> LearnStreamResult:
        """Learn ``(features, label)`` pairs in order over one stream.

        ``timeout`` bounds the whole stream (default: no deadline). If ``samples`` raises (or
        holds an unconvertible pair), the stream ends there; the exception is re-raised with a
        note of how many samples before it were learned.
        """
        guard = _RequestGuard()
        requests = (
            pb.LearnStreamRequest(sample=sample_to_proto(features, label))
            for features, label in samples
        )
        try:
            response = self._learning.LearnStream(
                guard.wrap(requests), timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, "LearnStream", self._target) from err
        result = learn_stream_result_from_proto(response)
        if guard.error is not None:
            guard.error.add_note(
                f"LearnStream: the {result.samples_accepted} samples before it were learned"
            )
        guard.reraise()
        return result

    # Model and admin

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        """Task, feature names (the dense order), classes, version and learner configuration."""
        response = self._call(
            "GetModelInfo", self._model.GetModelInfo, pb.GetModelInfoRequest(), timeout, retry=True
        )
        return model_info_from_proto(response)

    def stats(self, *, timeout: float | None = None) -> PlasticityStats:
        """The learner's plasticity statistics and prequential quality."""
        response = self._call(
            "GetPlasticityStats",
            self._model.GetPlasticityStats,
            pb.GetPlasticityStatsRequest(),
            timeout,
            retry=True,
        )
        return stats_from_proto(response)

    def checkpoint(self, *, timeout: float | None = None) -> CheckpointResult:
        """Ask the server to write a checkpoint now."""
        response = self._call(
            "Checkpoint", self._admin.Checkpoint, pb.CheckpointRequest(), timeout, retry=False
        )
        return checkpoint_from_proto(response)

    def list_checkpoints(self, *, timeout: float | None = None) -> list[CheckpointEntry]:
        """The checkpoints on the server's disk, newest first."""
        response = self._call(
            "ListCheckpoints",
            self._admin.ListCheckpoints,
            pb.ListCheckpointsRequest(),
            timeout,
            retry=True,
        )
        return [checkpoint_entry_from_proto(c) for c in response.checkpoints]

    def pause_learning(self, *, timeout: float | None = None) -> LearningState:
        """Stop the server learning (after its batch in progress); predictions go on."""
        response = self._call(
            "PauseLearning",
            self._admin.PauseLearning,
            pb.PauseLearningRequest(),
            timeout,
            retry=True,  # idempotent
        )
        return learning_state_from_proto(response)

    def resume_learning(self, *, timeout: float | None = None) -> LearningState:
        response = self._call(
            "ResumeLearning",
            self._admin.ResumeLearning,
            pb.ResumeLearningRequest(),
            timeout,
            retry=True,  # idempotent
        )
        return learning_state_from_proto(response)

    def roll_back(self, sequence: int, *, timeout: float | None = None) -> ModelReplaced:
        """Replace the server's model with checkpoint `sequence`'s (`list_checkpoints`)."""
        response = self._call(
            "RollBack",
            self._admin.RollBack,
            pb.RollBackRequest(sequence=sequence),
            timeout,
            retry=False,
        )
        return model_replaced_from_proto(response)

    def reset_model(self, *, timeout: float | None = None) -> ModelReplaced:
        """Replace the server's model with a fresh one."""
        response = self._call(
            "ResetModel", self._admin.ResetModel, pb.ResetModelRequest(), timeout, retry=False
        )
        return model_replaced_from_proto(response)

    def freeze_submodules(
        self, names: Sequence[str], *, timeout: float | None = None
    ) -> FrozenSubmodules:
        """Stop the server's torch module learning these submodules (or parameters), e.g.
        ``["backbone"]``; all or none. ``InvalidArgumentError`` for a name the module does not
        have, ``NotReadyError`` (FAILED_PRECONDITION) if the model is not a torch module."""
        return self._freeze("FreezeSubmodules", self._admin.FreezeSubmodules,
                            pb.FreezeSubmodulesRequest, names, timeout)  # fmt: skip

    def unfreeze_submodules(
        self, names: Sequence[str], *, timeout: float | None = None
    ) -> FrozenSubmodules:
        """Let the server's torch module learn these submodules (or parameters) again."""
        return self._freeze("UnfreezeSubmodules", self._admin.UnfreezeSubmodules,
                            pb.UnfreezeSubmodulesRequest, names, timeout)  # fmt: skip

    def _freeze(
        self, method: str, rpc: Any, request: Any, names: Sequence[str], timeout: float | None
    ) -> FrozenSubmodules:
        if isinstance(names, str) or not names:  # a str would be its characters
            raise ValueError(f"names must be a non-empty list of submodule names, not {names!r}")
        response = self._call(method, rpc, request(names=list(names)), timeout, retry=True)
        return frozen_submodules_from_proto(response)

    # Plumbing

    def _call(
        self,
        method: str,
        rpc: grpc.UnaryUnaryMultiCallable[Any, Any],
        request: Any,
        timeout: float | None,
        *,
        retry: bool,
    ) -> Any:
        """Make a unary call, retrying UNAVAILABLE if ``retry``; all attempts share one deadline."""
        timeout = self._timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                return rpc(request, timeout=remaining, metadata=self._metadata)
            except grpc.RpcError as err:
                # Jitter spreads the retries of many clients after a server restart.
                delay = min(_FIRST_BACKOFF * 2**attempt, _MAX_BACKOFF) * random.uniform(0.5, 1)
                retryable = (
                    retry
                    and attempt < self._retries
                    and status_code(err) == grpc.StatusCode.UNAVAILABLE
                    and (deadline is None or time.monotonic() + delay < deadline)
                )
                if not retryable:
                    raise error_from_rpc(err, method, self._target) from err
                time.sleep(delay)
                attempt += 1

    def _protocol_error(self, method: str, problem: str) -> ProtocolError:
        message = f"{method} on {self._target} broke the API contract: {problem}"
        return ProtocolError(message, grpc.StatusCode.INTERNAL, problem)


def tls_credentials(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials for a TLS server, read from PEM files.

    ``ca_file``: the CA that signed the server's certificate (None: the system's roots).
    ``cert_file`` and ``key_file``: this client's certificate and key, for a server that asks
    for one (mutual TLS).

    >>> tls_credentials(cert_file="client.pem")
    Traceback (most recent call last):
    ...
    ValueError: cert_file and key_file go together: pass both, or neither
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together: pass both, or neither")

    def read(path: str | Path | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file),
        private_key=read(key_file),
        certificate_chain=read(cert_file),
    )


def _rows(matrix: pb.Matrix) -> int:
    return len(matrix.values) // matrix.columns if matrix.columns else 0


class _RequestGuard:
    """Catches an exception raised while producing a stream's requests.

    gRPC pulls requests on its own thread and, if that raises, only logs it and cancels the
    call; the guard ends the stream cleanly instead and hands the exception to the caller.
    """

    def __init__(self) -> None:
        self.error: Exception | None = None

    def wrap(self, requests: Iterator[_T]) -> Iterator[_T]:
        try:
            yield from requests
        except Exception as err:  # re-raised on the caller's thread by reraise()
            self.error = err

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error
