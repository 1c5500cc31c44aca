"""The prediction replica (`lifelong serve-predictions`): it answers what the learner's server
answers for the same snapshot, follows newer snapshots, says FAILED_PRECONDITION and NOT_SERVING
before any, and keeps its snapshot when the file turns to garbage."""

import logging
import os
import random
import subprocess
import sys
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lifelong import snapshot_file
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.replica import Replica
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from testsupport import free_port, line_sample, small_learner, wait_for

HEALTH = health_pb2.HealthCheckResponse


@pytest.fixture
def replica():
    """`replica(path, **settings)`: a started in-process replica and its stubs."""
    started = []

    def start(path, **settings):
        settings = {"task": "classification", "snapshot_poll_seconds": 0.005, **settings}
        process = Replica(
            Settings(grpc_address="127.0.0.1:0", metrics_port=0, snapshot_file=path, **settings)
        )
        process.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{process.grpc.port}")
        started.append((process, channel))
        return (
            process,
            pb_grpc.PredictionServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )

    yield start
    for process, channel in started:
        channel.close()
        process.stop(0)


def learner_server(serve, path):
    host = ModelHost(
        small_learner(), refresh_every_samples=1, refresh_every_seconds=0, snapshot_file=path
    )
    return serve(host)


def learn(served, n: int, seed: int) -> None:
    rng = random.Random(seed)
    served.learn(line_sample(rng) for _ in range(n))


def requests() -> list[pb.PredictRequest]:
    rng = random.Random(7)
    named = [pb.PredictRequest(features=pb.Features(named=line_sample(rng)[0])) for _ in range(5)]
    dense = [pb.PredictRequest(features=pb.Features(dense=[0.3, -0.9]))]
    partial = [pb.PredictRequest(features=pb.Features(named={"x1": 0.4}))]  # x0 as its mean
    return named + dense + partial


def version(stub) -> int:
    return stub.Predict(requests()[0], timeout=5).model_version


def test_the_replica_answers_what_the_learners_server_does_and_follows_newer_snapshots(
    tmp_path, serve, replica
):
    path = tmp_path / "snapshot"
    served = learner_server(serve, path)
    learn(served, 200, seed=0)
    _, predictions, health = replica(path)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == HEALTH.SERVING
    assert version(predictions) == 200
    for request in requests():
        assert predictions.Predict(request, timeout=5) == served.predictions.Predict(request)
    batch = pb.PredictBatchRequest(
        matrix=pb.Matrix(columns=2, values=[0.1, 0.2, -0.5, 0.7, 3.0, -3.0])
    )
    answer = predictions.PredictBatch(batch, timeout=5)
    assert answer == served.predictions.PredictBatch(batch)
    assert len(answer.matrix_predictions.probabilities) == 6  # 3 rows, 2 classes

    learn(served, 50, seed=1)
    wait_for(lambda: version(predictions) == 250, "the replica to read the newer snapshot")
    for request in requests():
        assert predictions.Predict(request, timeout=5) == served.predictions.Predict(request)


def test_before_any_snapshot_the_replica_is_not_serving_and_not_ready(tmp_path, serve, replica):
    path = tmp_path / "snapshot"
    _, predictions, health = replica(path)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == HEALTH.NOT_SERVING
    service = health_pb2.HealthCheckRequest(service="lifelong.v1.PredictionService")
    assert health.Check(service, timeout=5).status == HEALTH.NOT_SERVING
    request = requests()[0]
    with pytest.raises(grpc.RpcError) as replica_error:
        predictions.Predict(request, timeout=5)
    with pytest.raises(grpc.RpcError) as fresh_error:  # a fresh learner's server says the same
        serve().predictions.Predict(request, timeout=5)
    assert replica_error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert replica_error.value.details() == fresh_error.value.details()

    served = learner_server(serve, path)  # writes its (empty) snapshot at start
    learn(served, 20, seed=0)
    wait_for(
        lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == HEALTH.SERVING,
        "SERVING once a snapshot is read",
    )
    wait_for(lambda: version(predictions) == 20, "the replica to read the snapshot")


def test_a_garbage_file_is_refused_and_the_previous_snapshot_kept(tmp_path, serve, replica, caplog):
    path = tmp_path / "snapshot"
    served = learner_server(serve, path)
    learn(served, 30, seed=0)
    process, predictions, _ = replica(path)
    assert version(predictions) == 30
    expected = [predictions.Predict(request, timeout=5) for request in requests()]

    with caplog.at_level(logging.ERROR, logger="lifelong.serving.replica"):
        for garbage in (b"not a snapshot", served.host.predictor.to_bytes()[:-10]):
            (tmp_path / "garbage").write_bytes(garbage)
            os.replace(tmp_path / "garbage", path)
            wait_for(lambda: "refused" in caplog.text, "the replica to refuse the file")
            assert [predictions.Predict(request, timeout=5) for request in requests()] == expected
            caplog.clear()
        # A model of the other task is refused too.
        regressor = small_learner("regression")
        regressor.learn_one({"x0": 1.0, "x1": 2.0}, 3.0)
        snapshot_file.write(path, regressor.snapshot())
        wait_for(lambda: "regression model" in caplog.text, "the replica to refuse the file")
    assert process.reader.predictor.version == 30

    learn(served, 10, seed=1)  # the learner replaces the file with a valid snapshot again
    wait_for(lambda: version(predictions) == 40, "the replica to read the newer snapshot")


def lifelong(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELONG_")}
    return subprocess.Popen([sys.executable, "-m", "lifelong", *args], env=env, text=True, **kwargs)


def test_serve_predictions_needs_a_snapshot_file():
    process = lifelong("serve-predictions", "--metrics-port", "0", stderr=subprocess.PIPE)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "serve-predictions needs snapshot_file (--snapshot-file)" in stderr


def status(health) -> int | None:
    """The process's health, or None while it does not listen yet."""
    try:
        return health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
    except grpc.RpcError:
        return None


@pytest.mark.slow
def test_serve_predictions_as_a_process_serves_and_exports_its_metrics(tmp_path):
    path, port, metrics_port = tmp_path / "snapshot", free_port(), free_port()
    args = ["serve-predictions", "--snapshot-file", str(path), "--snapshot-poll-seconds", "0.005"]
    args += ["--grpc-address", f"127.0.0.1:{port}", "--metrics-port", str(metrics_port)]
    process = lifelong(*args, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert wait_for(lambda: status(health), "the replica to listen") == HEALTH.NOT_SERVING
            model = small_learner()
            for x, y in (line_sample(random.Random(0)) for _ in range(10)):
                model.learn_one(x, y)
            snapshot_file.write(path, model.snapshot())
            wait_for(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == HEALTH.SERVING
                ),
                "SERVING",
            )
            assert version(pb_grpc.PredictionServiceStub(channel)) == 10
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        assert 'lifelong_predictions_total{rpc="predict"} 1.0' in text
        assert 'lifelong_predict_latency_seconds_count{rpc="predict"} 1.0' in text
        assert "lifelong_model_version 10.0" in text  # its snapshot's: staleness vs the learner's
        assert "lifelong_samples_learned" not in text  # a replica learns nothing: no such series
        assert "process_resident_memory_bytes " in text and "python_info{" in text
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert process.returncode == 0


def test_serve_writes_the_snapshot_file_and_refuses_a_missing_directory(tmp_path):
    from lifelong.app import App
    from lifelong.config import ConfigError

    settings = {"grpc_address": "127.0.0.1:0", "metrics_port": 0, "learner": {"hidden": [8]}}
    app = App(Settings(snapshot_file=tmp_path / "snapshot", **settings))
    app.grpc.stop(0)
    assert snapshot_file.load((tmp_path / "snapshot").read_bytes()).version == 0
    with pytest.raises(ConfigError, match="does not exist"):
        App(Settings(snapshot_file=tmp_path / "missing" / "snapshot", **settings))


def test_a_file_that_cannot_be_read_is_logged_once_and_retried(tmp_path, caplog):
    from lifelong.metrics import PredictionMetrics
    from lifelong.serving.replica import SnapshotReader

    path = tmp_path / "snapshot"
    path.mkdir()  # opening it fails, as a file without read permission would
    reader = SnapshotReader(path, "classification", PredictionMetrics())
    with caplog.at_level(logging.ERROR, logger="lifelong.serving.replica"):
        assert reader.poll() is False and reader.poll() is False
    assert len(caplog.records) == 1 and "cannot read the snapshot file" in caplog.text
    path.rmdir()
    model = small_learner()
    model.learn_one({"x0": 1.0}, "a")
    snapshot_file.write(path, model.snapshot())
    assert reader.poll() is True and reader.predictor.version == 1
