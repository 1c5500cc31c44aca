"""A torch module from examples/ and a river pipeline, served end to end from a real broker:
learn from Kafka, predict over gRPC, their /metrics series, SIGKILL and restart with the
exactly-once result (bit for bit for the torch module, the same predictions for river), and a
tampered river checkpoint refused. The built-in MLP's run is test_service_kafka.py's."""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path

import pytest
from integration.test_service_kafka import as_message, read_topic
from kafka import KafkaProducer
from lifelong.checkpoint import CheckpointStore, decode
from lifelong.config import Settings
from lifelong.ingest.codecs import decode_records, encode_json
from lifelong.ingest.produce import samples_from_stream
from lifelong.model import load, state
from lifelong.model.factory import make_learner
from lifelong.model.river_model import load_river
from numerics import assert_same_learned_state
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]
KEY = b"end-to-end test key, not a secret"
KINDS = {
    "torch": {
        "model": "torch_models:mlp",
        "model_args": {"n_inputs": 9, "n_outputs": 2, "hidden": [32]},
        "learner": {"features": FEATURES, "seed": 7, "plasticity": ["cbp"]},
    },
    "torch-unhookable": {  # ReLU as a function: nothing for the hooks to read
        "model": "torch_models:functional_mlp",
        "model_args": {"n_inputs": 9, "n_outputs": 2, "hidden": 16},
        "learner": {"features": FEATURES, "seed": 7, "plasticity": ["l2_init"]},
    },
    "river": {"model": "river_pipelines:scaled_linear", "model_args": {"lr": 0.05}, "learner": {}},
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_of_ones_own_learns_from_kafka_exactly_once(
    kind, kafka_bootstrap, kafka_topic, service, tmp_path, monkeypatch
):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the reference below, in this process
    spec = KINDS[kind]
    settings = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in spec.items()}
    if kind == "river":
        (tmp_path / "key").write_bytes(KEY)
        settings["state_key_file"] = tmp_path / "key"
    n = 1500
    topic = kafka_topic(partitions=1)
    stream = samples_from_stream("agrawal", seed=5, count=n)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)
    produced = 0

    def feed(k: int) -> None:
        nonlocal produced
        for features, label in itertools.islice(stream, k):
            producer.send(topic, value=encode_json(features, label))
            produced += 1
        producer.flush()

    svc = service(topic, checkpoint_every_samples=100, kafka_poll_max_records=50, **settings)
    rng = random.Random(3)
    learned = 0
    for run in range(2):  # killed mid-stream twice
        resumed = getattr(CheckpointStore(svc.checkpoint_dir).load_latest(), "samples_learned", 0)
        point = rng.randrange(resumed + 1, resumed + 400)
        svc.start(kafka_group=f"{topic}-run{run}")
        wait_for(lambda: svc.samples_learned() is not None, "the server to answer")

        def fed_past(point: int = point) -> bool:
            nonlocal learned
            feed(20)
            learned = svc.samples_learned() or 0
            return learned >= point

        wait_for(fed_past, f"{point} samples learned")
        svc.kill()

    feed(n - produced)
    producer.close()
    svc.start(kafka_group=f"{topic}-final")
    svc.wait_learned(n)
    svc.wait_served(n)
    x = dict(zip(FEATURES, [50000.0, 20000.0, 40, 2, 10, 3, 500000.0, 20, 200000.0], strict=True))
    served = svc.client.predict(x)
    metrics = svc.metrics()
    written = svc.client.checkpoint()
    assert written.samples_learned == n
    assert svc.stop() == 0

    # Its series: prequential accuracy for both; per-layer plasticity only where layers exist.
    assert metrics[("lifelong_samples_learned_total", (("source", "kafka"),))] > 0  # this process
    assert ("lifelong_prequential_accuracy_ratio", ()) in metrics
    layer_series = {name for name, labels in metrics if name == "lifelong_dead_units_ratio"}
    if kind == "torch":
        assert ("lifelong_dead_units_ratio", (("layer", "0"),)) in metrics  # one hidden layer
        assert metrics[("lifelong_units_replaced_total", (("layer", "0"),))] >= 0
    else:
        assert not layer_series  # absent, not zero
    if kind == "river":
        assert ("lifelong_gradient_norm", ()) not in metrics
    else:
        assert metrics[("lifelong_gradient_norm", ())] > 0

    # Exactly once: the state is that of one process learning the topic's records in order.
    path = Path(written.path)
    checkpoint = decode(path.read_bytes(), path, sequence=0)
    assert checkpoint.offsets == {f"{topic}:0": n}
    defaults = Settings()
    decoded = decode_records(
        map(as_message, read_topic(kafka_bootstrap, topic, n)),
        default="json",
        task="classification",
        max_features=defaults.max_features,
        max_bytes=defaults.max_record_bytes,
    )
    reference = make_learner(
        "classification", spec["model"], spec["model_args"], spec["learner"], KEY
    )
    for sample in decoded.samples:
        reference.learn_one(sample.features, sample.label)
    if kind.startswith("torch"):
        assert_same_learned_state(checkpoint.learner_state, reference.to_bytes())
        restored = load(checkpoint.learner_state)
    else:
        restored = load_river(checkpoint.learner_state, KEY)
        assert restored.samples_learned == reference.samples_learned == n
        rows = [s.features for s in decoded.samples[:200]]
        ours, theirs = restored.snapshot(), reference.snapshot()
        assert [ours.predict_proba_one(r) for r in rows] == [
            theirs.predict_proba_one(r) for r in rows
        ]
    assert served.model_version == n
    assert served.label == restored.snapshot().predict_one(x)

    if kind == "river":  # a tampered checkpoint is refused: the service does not start
        tensors = state.metadata(checkpoint.learner_state)
        import safetensors.torch

        data = safetensors.torch.load(checkpoint.learner_state)
        data["pickle"][-5] ^= 1
        meta = dict(tensors)
        tampered = state.dumps(meta.pop("kind"), data, meta)
        CheckpointStore(svc.checkpoint_dir).save(tampered, checkpoint.offsets, n + 1)
        svc.start(kafka_group=f"{topic}-tampered")
        assert svc.process.wait(timeout=120) != 0
        assert "does not authenticate" in svc.log.read_text()
