"""The status page's HTTP endpoints on real servers: `/api/v1/status` says what the model is and
equals `GetPlasticityStats`; `/metrics` stays prometheus_client's; where the page is served."""

import gzip
import json
import random
import urllib.error
import urllib.request

import grpc
import pytest
from lifelong import snapshot_file
from lifelong.app import App
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.replica import Replica
from lifelong.status import Board, LearnerProbe, StatusApp, serve
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from prometheus_client import make_wsgi_app, start_http_server
from testsupport import Servers, free_port, line_sample, small_learner, wait_for

OPENMETRICS = "application/openmetrics-text"
PROMETHEUS_TEXT = "text/plain; version="
STATS = ("gradient_norm", "mean_abs_weight", "prequential_score", "prequential_loss")
LAYER = (
    "width",
    "dead_fraction",
    "dormant_fraction",
    "tau_dormant_fraction",
    "effective_rank",
    "mean_abs_weight",
    "units_replaced",
)


def get(url: str, headers: dict | None = None):
    """(status, headers, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def status(port: int, since: int = 0) -> dict:
    code, headers, body = get(f"http://127.0.0.1:{port}/api/v1/status?since={since}")
    assert code == 200 and headers["Content-Type"] == "application/json"
    return json.loads(body)


@pytest.fixture
def learner_page():
    """A learner's gRPC server and its status page (on a free port), learning only when the test
    says: (served, board, port)."""
    servers = Servers()
    served = servers.start(ModelHost(small_learner(), refresh_every_samples=1))
    board = Board(LearnerProbe(served.host), interval=1.0, horizon=60.0)
    port = free_port()
    http = serve(StatusApp(board, make_wsgi_app(served.host.metrics.registry)), port)
    yield served, board, port
    http.shutdown()
    servers.close()


def test_status_equals_get_plasticity_stats(learner_page):
    served, _, port = learner_page
    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(450))  # 4 telemetry windows and a half
    document = status(port)
    answer = served.model.GetPlasticityStats(pb.GetPlasticityStatsRequest())

    stats = document["stats"]
    assert stats["samples_learned"] == answer.samples_learned == 450
    assert stats["drifts_detected"] == answer.drifts_detected
    for name in STATS:
        assert stats[name] == getattr(answer, name), name
    assert len(stats["layers"]) == len(answer.layers) == 2
    for mine, theirs in zip(stats["layers"], answer.layers, strict=True):
        for name in LAYER:
            assert mine[name] == getattr(theirs, name), name
    assert stats["layers"][0]["effective_rank"] > 0  # a real window, not zeros

    model = document["model"]
    assert model["role"] == "learner" and model["task"] == "classification"
    assert model["features"] == list(served.host.feature_names)
    assert sorted(model["features"]) == ["x0", "x1"]
    assert sorted(model["classes"]) == ["above", "below"]
    assert model["version"] == served.host.predictor.version == 450
    assert model["config"]["hidden"] == [16, 16]
    assert model["kafka_lag"] == {}


def test_history_is_recorded_by_the_board_not_by_learning(learner_page):
    served, board, port = learner_page
    rng = random.Random(1)
    served.learn(line_sample(rng) for _ in range(300))
    assert status(port)["history"]["seq"] == 0  # learning recorded nothing
    board.record()
    served.learn(line_sample(rng) for _ in range(200))
    board.record()
    history = status(port)["history"]
    assert history["seq"] == 2
    assert history["series"]["samples_learned"] == [300, 500]
    assert history["series"]["samples_per_second"][1] > 0
    assert len(history["series"]["dead_fraction.1"]) == 2
    assert status(port, since=1)["history"]["series"]["samples_learned"] == [500]
    assert status(port)["model"]["state"] == "learning"
    board.record()  # a tick with nothing learned
    assert status(port)["model"]["state"] == "waiting"
    charted = {key for chart in status(port)["charts"] for key, _ in chart["series"]}
    assert charted <= set(history["series"])


def test_page_files_and_bad_requests(learner_page):
    _, _, port = learner_page
    base = f"http://127.0.0.1:{port}"
    code, headers, body = get(base + "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"static/uPlot.iife.min.js" in body and b"//" not in body.split(b"<script")[1][:40]
    code, headers, body = get(base + "/static/uPlot.iife.min.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"uPlot" in body
    assert get(base + "/static/uPlot.LICENSE.txt")[2].startswith(b"The MIT License")
    assert get(base + "/static/../web.py")[0] == 404
    assert get(base + "/nothing")[0] == 404
    assert get(base + "/api/v1/status?since=x")[0] == 400
    post = urllib.request.Request(base + "/api/v1/status", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(post, timeout=10)
    assert error.value.code == 405


def steady(answer) -> list[bytes]:
    """The exposition's lines without the process's own series (CPU seconds, memory, GC counts
    move between two scrapes)."""
    body = answer[2]
    if answer[1]["Content-Encoding"] == "gzip":
        body = gzip.decompress(body)
    return [
        line
        for line in body.splitlines()
        if not any(name in line for name in (b"process_", b"python_gc_"))
    ]


def test_metrics_beside_the_page_are_what_prometheus_clients_server_answers(learner_page):
    served, _, port = learner_page
    served.learn(line_sample(random.Random(3)) for _ in range(150))
    theirs, _ = start_http_server(free_port(), "127.0.0.1", served.host.metrics.registry)
    try:
        for headers in ({}, {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}):
            mine = get(f"http://127.0.0.1:{port}/metrics", headers)
            reference = get(f"http://127.0.0.1:{theirs.server_port}/metrics", headers)
            assert mine[0] == reference[0] == 200
            for header in ("Content-Type", "Content-Encoding"):
                assert mine[1][header] == reference[1][header], header
            assert steady(mine) == steady(reference)
        assert b"lifelong_effective_rank{layer=" in get(f"http://127.0.0.1:{port}/metrics")[2]
    finally:
        theirs.shutdown()


def app_settings(**settings) -> Settings:
    return Settings(grpc_address="127.0.0.1:0", learner={"hidden": [8]}, **settings)


def test_page_on_a_port_of_its_own():
    metrics_port, status_port = free_port(), free_port()
    app = App(app_settings(metrics_port=metrics_port, status_port=status_port))
    app.start()
    try:
        assert status(status_port)["model"]["role"] == "learner"
        assert get(f"http://127.0.0.1:{status_port}/metrics")[0] == 404
        # The metrics port answers metrics on every path, as prometheus_client always did.
        code, headers, _ = get(f"http://127.0.0.1:{metrics_port}/")
        assert code == 200 and headers["Content-Type"].startswith(PROMETHEUS_TEXT)
    finally:
        app.stop()


def test_status_port_zero_turns_the_page_off():
    metrics_port = free_port()
    app = App(app_settings(metrics_port=metrics_port, status_port=0))
    app.start()
    try:
        assert app.board is None
        code, headers, _ = get(f"http://127.0.0.1:{metrics_port}/api/v1/status")
        assert code == 200 and headers["Content-Type"].startswith(PROMETHEUS_TEXT)
    finally:
        app.stop()


def test_replica_page_shows_its_snapshot_and_predictions(tmp_path):
    path = tmp_path / "snapshot"
    learner = small_learner()
    rng = random.Random(2)
    for _ in range(120):
        learner.learn_one(*line_sample(rng))
    snapshot_file.write(path, learner.snapshot())
    port = free_port()
    replica = Replica(
        Settings(
            grpc_address="127.0.0.1:0",
            metrics_port=port,
            snapshot_file=path,
            status_interval_seconds=0.1,
        )
    )
    replica.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{replica.grpc.port}")
        stub = pb_grpc.PredictionServiceStub(channel)
        for _ in range(20):
            stub.Predict(pb.PredictRequest(features=pb.Features(named={"x0": 0.1, "x1": 0.2})))
        channel.close()
        history = wait_for(
            lambda: (
                (h := status(port)["history"])["series"].get("rows_per_second.predict")
                and max(h["series"]["rows_per_second.predict"]) > 0
                and h
            ),
            "the replica's page to count the predictions",
        )
        assert max(v for v in history["series"]["latency_ms.predict"] if v is not None) > 0
        assert set(history["series"]["version"]) == {120}
        model = status(port)["model"]
        assert (model["role"], model["state"], model["version"]) == ("replica", "serving", 120)
        assert model["features"] == ["x0", "x1"] and model["snapshot_source"] == str(path)
        assert get(f"http://127.0.0.1:{port}/metrics")[2].count(b"lifelong_model_version 120")
    finally:
        replica.stop(0)
