"""Status codes become exceptions a caller can act on; timeouts and retries."""

import socket
import time

import grpc
import pytest
from lifelong.client import (
    DeadlineExceededError,
    InvalidArgumentError,
    LifelongClient,
    LifelongError,
    NotReadyError,
    ResourceExhaustedError,
    UnavailableError,
)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.FAILED_PRECONDITION, NotReadyError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, LifelongError),
    ],
)
def test_status_codes_map_to_exceptions_carrying_the_details(client, fake, address, code, error):
    fake.errors["Predict"].append((code, "features.dense: 3 values, the model has 4 features"))

    with pytest.raises(LifelongError) as caught:
        client.predict([1.0, 2.0, 3.0])

    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.details == "features.dense: 3 values, the model has 4 features"
    assert str(caught.value) == (
        f"Predict on {address} failed with {code.name}: "
        "features.dense: 3 values, the model has 4 features"
    )
    assert isinstance(caught.value.__cause__, grpc.RpcError)


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("PredictBatch", lambda c: c.predict_batch([[1.0]])),
        ("PredictStream", lambda c: list(c.predict_stream([[[1.0]]]))),
        ("PredictBatch", lambda c: c.predict_matrix([[1.0]])),
        ("PredictStream", lambda c: list(c.predict_matrix_stream([[[1.0]]]))),
        ("Learn", lambda c: c.learn([1.0], "a")),
        ("LearnStream", lambda c: c.learn_stream([([1.0], "a")])),
        ("GetModelInfo", lambda c: c.model_info()),
        ("GetPlasticityStats", lambda c: c.stats()),
        ("Checkpoint", lambda c: c.checkpoint()),
    ],
)
def test_every_method_maps_errors(client, fake, method, call):
    fake.errors[method].append((grpc.StatusCode.FAILED_PRECONDITION, "nothing learned yet"))
    with pytest.raises(NotReadyError, match=f"^{method} on .*: nothing learned yet$"):
        call(client)


def test_slow_answer_raises_deadline_exceeded(address, fake):
    fake.delay = 0.5
    with LifelongClient(address, timeout=0.1) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError) as caught:
            client.predict([1.0])
    assert time.monotonic() - start < 0.4
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_per_call_timeout_overrides_the_client_default(address, fake):
    fake.delay = 0.3
    with LifelongClient(address, timeout=0.05) as client:
        assert client.predict([1.0], timeout=2.0).label == "pos"
    with LifelongClient(address, timeout=5.0) as client, pytest.raises(DeadlineExceededError):
        client.model_info(timeout=0.05)


def test_stream_timeout_bounds_the_whole_stream(client, fake):
    fake.delay = 0.5
    with pytest.raises(DeadlineExceededError):
        list(client.predict_stream([[[1.0]]], timeout=0.1))


def test_unavailable_is_retried_for_idempotent_calls(address, fake):
    fake.errors["Predict"] += [(grpc.StatusCode.UNAVAILABLE, "shutting down")] * 2
    with LifelongClient(address, retries=2) as client:
        assert client.predict([1.0]).label == "pos"
    assert fake.calls["Predict"] == 3


def test_predict_matrix_is_retried_on_unavailable(address, fake):
    fake.errors["PredictBatch"] += [(grpc.StatusCode.UNAVAILABLE, "shutting down")] * 2
    with LifelongClient(address, retries=2) as client:
        assert client.predict_matrix([[1.0]]).labels == ["pos"]
    assert fake.calls["PredictBatch"] == 3


def test_retries_are_bounded(address, fake):
    fake.errors["GetModelInfo"] += [(grpc.StatusCode.UNAVAILABLE, "shutting down")] * 3
    with LifelongClient(address, retries=2) as client, pytest.raises(UnavailableError):
        client.model_info()
    assert fake.calls["GetModelInfo"] == 3


def test_retries_stop_at_the_deadline(address, fake):
    fake.errors["Predict"] += [(grpc.StatusCode.UNAVAILABLE, "shutting down")] * 100
    with LifelongClient(address, timeout=0.3, retries=100) as client:
        start = time.monotonic()
        with pytest.raises(UnavailableError, match="shutting down"):
            client.predict([1.0])
    assert time.monotonic() - start < 0.45  # no sleep past the deadline
    # Sleeps of 25-50, 50-100, 100-200 ms fit 3 or 4 attempts in 300 ms; fewer on a slow host.
    assert 2 <= fake.calls["Predict"] <= 4


def test_other_codes_are_not_retried(address, fake):
    fake.errors["Predict"].append((grpc.StatusCode.INVALID_ARGUMENT, "empty features"))
    with LifelongClient(address, retries=3) as client, pytest.raises(InvalidArgumentError):
        client.predict([1.0])
    assert fake.calls["Predict"] == 1


def test_learning_and_checkpoints_are_never_retried(address, fake):
    fake.errors["Learn"].append((grpc.StatusCode.UNAVAILABLE, "shutting down"))
    fake.errors["Checkpoint"].append((grpc.StatusCode.UNAVAILABLE, "shutting down"))
    with LifelongClient(address, retries=3) as client:
        with pytest.raises(UnavailableError):
            client.learn([1.0], "a")
        with pytest.raises(UnavailableError):
            client.checkpoint()
    assert (fake.calls["Learn"], fake.calls["Checkpoint"]) == (1, 1)
    assert fake.samples_learned == 0


def test_no_server_raises_unavailable_naming_the_target():
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sock.getsockname()[1]}"
    expected = f"^Predict on {target} failed with UNAVAILABLE"
    with (
        LifelongClient(target, timeout=2.0) as client,
        pytest.raises(UnavailableError, match=expected),
    ):
        client.predict([1.0])


def test_negative_retries_are_rejected():
    with pytest.raises(ValueError, match="retries"):
        LifelongClient("localhost:1", retries=-1)
