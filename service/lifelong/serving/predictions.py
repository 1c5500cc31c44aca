"""`lifelong.v1.PredictionService`: predictions from a source's current snapshot.

The source is the learner's `ModelHost` or, in a prediction replica, the snapshot file's reader
(`lifelong.serving.replica`). A call reads `source.predictor` once (no lock) and answers every
row from that snapshot, as one matrix through the network, so a batch has one `model_version`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import grpc
import numpy as np
from lifelong.client.convert import label_to_proto
from lifelong.metrics import PredictionMetrics
from lifelong.model import Predictor
from lifelong.samples import FLOAT32_MAX, InvalidSample, Task
from lifelong.serving.inputs import check_outputs, features_matrix, status_of
from lifelong.serving.matrix import matrix_inputs, matrix_predictions
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc


class PredictionSource(Protocol):
    """What predictions are answered from: `ModelHost`, or a replica's snapshot reader."""

    task: Task

    @property
    def predictor(self) -> Predictor:
        """The current snapshot, swapped by reference: read without a lock."""
        ...


class SnapshotView:
    """What answering from one snapshot needs, built once per snapshot rather than per call."""

    __slots__ = ("classes", "columns", "n_features", "predictor", "row")

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.columns = {name: j for j, name in enumerate(predictor.feature_names)}
        self.n_features = len(self.columns)
        self.classes = [label_to_proto(c) for c in getattr(predictor, "classes", ())]
        self.row = predictor.row_function()


class NotReady(Exception):
    """The snapshot cannot answer yet (nothing learned)."""


class PredictionServicer(pb_grpc.PredictionServiceServicer):
    def __init__(
        self,
        source: PredictionSource,
        metrics: PredictionMetrics,
        *,
        max_features: int,
        max_batch_rows: int = 10_000,
    ) -> None:
        self.source = source
        self.max_features = max_features
        self.max_batch_rows = max_batch_rows
        self.classification = source.task == "classification"
        self._view = SnapshotView(source.predictor)
        self._count = metrics.predictions
        self._unknown = metrics.predictions_without_known_features
        self._latency = metrics.predict_latency

    def _current(self) -> SnapshotView:
        predictor = self.source.predictor
        view = self._view
        if view.predictor is not predictor:
            # Threads racing here build equal views; the last one stays. No lock needed.
            view = self._view = SnapshotView(predictor)
        return view

    def predict(
        self, view: SnapshotView, rows: Sequence[pb.Features], add: Callable[[], pb.Prediction]
    ) -> None:
        """Predict `rows` from `view`'s snapshot as one batch, into one `add()` per row.

        A row by name lacking some of the model's features also goes through the snapshot's
        per-row path, which takes a missing feature as its mean. Predictions are written in
        place into the response: building messages and copying them in would cost more than the
        network's forward pass.

        A row by name none of whose features the model knows is answered all the same (every
        feature missing: their means), with `no_known_features` set, and counted.
        """
        self._check_ready(view)
        if not rows:
            return
        X, partial = features_matrix(rows, view.columns, max_features=self.max_features)
        columns = view.columns
        unknown = [i for i in partial if columns.keys().isdisjoint(rows[i].named)]
        if unknown:
            add = _marking(add, set(unknown))
        predictor = view.predictor
        if not self.classification:
            y = predictor.predict_dense(X)
            for i in partial:  # the model's own path takes a missing feature as its mean
                y[i] = predictor.predict_one(dict(rows[i].named))
            check_outputs(y, _example(len(rows)))
            for value in y.tolist():
                add().label.number = value
            self._unknown.inc(len(unknown))
            return
        proba = predictor.predict_proba_dense(X)
        for i in partial:  # as above
            p = predictor.predict_proba_one(dict(rows[i].named))
            proba[i] = [p[c] for c in predictor.classes]
        check_outputs(proba, _example(len(rows)))
        order = np.argsort(-proba, axis=1, kind="stable")  # most probable first; ties keep order
        sorted_proba = np.take_along_axis(proba, order, axis=1).tolist()
        classes = view.classes
        for js, ps in zip(order.tolist(), sorted_proba, strict=True):
            prediction = add()
            prediction.label.CopyFrom(classes[js[0]])
            probabilities = prediction.probabilities
            for j, p in zip(js, ps, strict=True):
                probabilities.add(probability=p).label.CopyFrom(classes[j])
        self._unknown.inc(len(unknown))

    def _check_ready(self, view: SnapshotView) -> None:
        if view.predictor.version == 0 or (self.classification and not view.classes):
            raise NotReady(
                "the model has learned nothing yet, so it knows no class"
                if self.classification
                else "the model has learned nothing yet"
            )

    def predict_matrix(self, view: SnapshotView, request, out: pb.MatrixPredictions) -> int:
        """Predict `request.matrix` from `view`'s snapshot into `out` as arrays
        (`lifelong.serving.matrix`); returns the number of rows."""
        self._check_ready(view)
        X = matrix_inputs(request, view.predictor.feature_names)
        matrix_predictions(view.predictor, view.classes, X, out)
        return len(X)

    def _answer(
        self,
        rpc: str,
        rows: Sequence[pb.Features],
        response,
        add: Callable[[], pb.Prediction],
        context,
        where: str = "",
        request: pb.PredictBatchRequest | pb.PredictStreamRequest | None = None,
    ) -> None:
        """Fill `response`, or abort the call with a status saying why not. A `request` with a
        `matrix` is answered from it into `response.matrix_predictions` instead of `rows`."""
        view = self._current()
        try:
            self._check_rows(rows, request)
            if request is not None and request.HasField("matrix"):
                n = self.predict_matrix(view, request, response.matrix_predictions)
            else:
                self.predict(view, rows, add)
                n = len(rows)
        except InvalidSample as e:
            context.abort(status_of(e), f"{where}{e}")
        except NotReady as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{where}{e}; learn samples first")
        response.model_version = view.predictor.version
        self._count[rpc].inc(n)

    def _check_rows(self, rows: Sequence[pb.Features], request) -> None:
        """Refuse a request of more than `max_batch_rows` rows (`too_many_rows`)."""
        n = len(rows)
        if request is not None and request.HasField("matrix"):
            n = len(request.matrix.values) // max(request.matrix.columns, 1)
        if n > self.max_batch_rows:
            raise InvalidSample(
                "too_many_rows",
                f"the request asks for {n} rows, more than max_batch_rows={self.max_batch_rows}; "
                "send them in several requests (or PredictStream messages)",
            )

    def Predict(self, request: pb.PredictRequest, context) -> pb.PredictResponse:
        start = time.perf_counter()
        response = pb.PredictResponse()
        view = self._current()
        if self._predict_one(view, request.features, response.prediction):
            response.model_version = view.predictor.version
            self._count["predict"].inc(1)
        else:  # anything unusual, every error included: the batch path, as one row
            self._answer(
                "predict", (request.features,), response, lambda: response.prediction, context
            )
        self._latency["predict"].observe(time.perf_counter() - start)
        return response

    def _predict_one(self, view: SnapshotView, row: pb.Features, prediction) -> bool:
        """Answer one row into `prediction` with less per-call work than `predict`, the same
        numbers (`Predictor.row_function`): a complete, finite row, dense or by name, whose
        outputs are finite. False, with `prediction` untouched, for anything else (not ready,
        partial, invalid, non-finite): `predict` then answers or says what is wrong."""
        n = view.n_features
        if view.predictor.version == 0 or (self.classification and not view.classes) or not n:
            return False
        dense, named = row.dense, row.named
        if dense:
            if named or not n <= len(dense) <= self.max_features:
                return False
            values = list(dense)
            for value in values:
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # NaN compares false
                    return False
            del values[n:]  # ignored (checked all the same, above)
        else:
            if not n <= len(named) <= self.max_features:
                return False
            values = [None] * n
            columns = view.columns
            for name, value in named.items():
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:
                    return False
                j = columns.get(name)
                if j is not None:
                    values[j] = value
            if None in values:  # partial: the model's own path takes a missing feature as mean
                return False
        out = view.row(values)
        if not self.classification:
            if not math.isfinite(out):
                return False
            prediction.label.number = out
            return True
        ps = out[0].tolist()
        for p in ps:
            if not math.isfinite(p):
                return False
        # Most probable first, ties in class order: what the stable argsort in `predict` gives.
        order = sorted(range(len(ps)), key=lambda j: -ps[j])
        classes = view.classes
        prediction.label.CopyFrom(classes[order[0]])
        probabilities = prediction.probabilities
        for j in order:
            probabilities.add(probability=ps[j]).label.CopyFrom(classes[j])
        return True

    def PredictBatch(self, request: pb.PredictBatchRequest, context) -> pb.PredictBatchResponse:
        start = time.perf_counter()
        response = pb.PredictBatchResponse()
        self._answer(
            "predict_batch",
            request.examples,
            response,
            response.predictions.add,
            context,
            request=request,
        )
        self._latency["predict_batch"].observe(time.perf_counter() - start)
        return response

    def PredictStream(
        self, request_iterator: Iterator[pb.PredictStreamRequest], context
    ) -> Iterator[pb.PredictStreamResponse]:
        """Each message is a batch; a bad one ends the stream with its status (grpc has one
        status per call), naming its request_id."""
        latency = self._latency["predict_stream"]
        for request in request_iterator:
            start = time.perf_counter()
            response = pb.PredictStreamResponse(request_id=request.request_id)
            self._answer(
                "predict_stream",
                request.examples,
                response,
                response.predictions.add,
                context,
                f"request_id {request.request_id}: ",
                request=request,
            )
            latency.observe(time.perf_counter() - start)
            yield response


def _example(n: int) -> Callable[[int], str]:
    """How an error names row i of `n` (a single input needs no index)."""
    return (lambda i: f"examples[{i}]: ") if n > 1 else (lambda i: "")


def _marking(add: Callable[[], pb.Prediction], rows: set[int]) -> Callable[[], pb.Prediction]:
    """`add`, setting `no_known_features` on the predictions of `rows` (by position)."""
    position = itertools.count()

    def marked() -> pb.Prediction:
        prediction = add()
        if next(position) in rows:
            prediction.no_known_features = True
        return prediction

    return marked
