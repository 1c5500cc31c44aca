"""`lifelong.v1.LearningService`: samples over gRPC, learned through the host (source "grpc").

Every sample is validated first; an invalid one is counted, never learned, and fails the call
with INVALID_ARGUMENT saying what to fix, or RESOURCE_EXHAUSTED when the model has no room for
it yet (`lifelong.serving.inputs.status_of`: a new class past `max_classes`, new features faster
than it may grow), the code Google's API design guide gives a quota or capacity reached, where
INVALID_ARGUMENT is for a request wrong whatever the state. In a stream, the samples before it
stay learned (each is learned once, on arrival) and the message says how many there were.

When the model learns from Kafka, a valid sample is forwarded to the sample topic instead
(`lifelong.ingest.forward`) and the call answers once the broker has it: the learn loop learns
it, exactly once. The model's admission rules are asked first, on the model as it is, so a
sample they refuse now is answered as it would be without Kafka; at its turn they decide.
UNAVAILABLE if the broker did not acknowledge it (send it again).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from lifelong.host import ModelHost
from lifelong.ingest.forward import NotStored, SampleForwarder
from lifelong.samples import InvalidSample, sample_from_proto
from lifelong.serving.inputs import status_of
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

SOURCE = "grpc"


class LearningServicer(pb_grpc.LearningServiceServicer):
    def __init__(
        self, host: ModelHost, *, max_features: int, forward: SampleForwarder | None = None
    ) -> None:
        self.host = host
        self.max_features = max_features
        self.forward = forward

    def _learn(self, sample: pb.Sample) -> None:
        """Learn one sample (or forward it to Kafka); raise `InvalidSample` if it cannot be,
        `NotStored` if the broker did not take it."""
        rejected: list[InvalidSample] = []
        try:
            valid = sample_from_proto(sample, task=self.host.task, max_features=self.max_features)
        except InvalidSample as e:
            self.host.metrics.rejected(SOURCE, e.reason).inc()
            raise
        if self.forward is not None:  # refused now: refused at its turn too, but for a reset
            try:
                self.host.learning.admit(valid)
            except InvalidSample as e:
                self.host.metrics.rejected(SOURCE, e.reason).inc()
                raise
            self.forward.send([sample])
            return
        # The dense size is checked by the host, against the model as it is at the sample's turn.
        self.host.learn([valid], source=SOURCE, on_rejected=lambda _, e: rejected.append(e))
        if rejected:  # popped: kept in this frame, it would make a cycle with its traceback
            raise rejected.pop()

    def _check_learning(self, context) -> None:
        if self.host.paused:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "learning is paused by an operator (AdminService/ResumeLearning resumes it); "
                "nothing was learned, send the samples again later",
            )

    def Learn(self, request: pb.LearnRequest, context) -> pb.LearnResponse:
        self._check_learning(context)
        try:
            self._learn(request.sample)
        except InvalidSample as e:
            context.abort(status_of(e), str(e))
        except NotStored as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{e}; nothing was learned, send it again")
        return pb.LearnResponse(samples_learned=self.host.samples_learned)

    def LearnStream(
        self, request_iterator: Iterator[pb.LearnStreamRequest], context
    ) -> pb.LearnStreamResponse:
        accepted = 0
        for request in request_iterator:
            if self.host.paused:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"learning was paused by an operator after {accepted} sample(s) of the "
                    "stream (counting from 0) were learned; send the rest again later",
                )
            try:
                self._learn(request.sample)
            except InvalidSample as e:
                context.abort(
                    status_of(e),
                    f"sample {accepted} of the stream (counting from 0): {e}; "
                    f"the {accepted} before it were learned",
                )
            except NotStored as e:
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"sample {accepted} of the stream (counting from 0): {e}; "
                    f"the {accepted} before it were taken, send the rest again",
                )
            accepted += 1
        return pb.LearnStreamResponse(
            samples_accepted=accepted, samples_learned=self.host.samples_learned
        )
