"""The challenger in a live service on a real broker (issue 13): SIGKILLed while a challenger
learns and right after a swap, the restarted service ends bit for bit where an uninterrupted
run does; its metrics say what happened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from integration.test_service_kafka import as_message, read_topic
from kafka import KafkaProducer
from lifelong.checkpoint import CheckpointStore, decode
from lifelong.config import Settings
from lifelong.ingest.codecs import decode_records, encode_json
from lifelong.model import Challenged, ChallengerConfig, LifelongClassifier
from numerics import assert_same_learned_state
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BEFORE, AFTER = 20_000, 10_000  # rows of teacher A, then of a new teacher B
N = BEFORE + AFTER
CHALLENGER = {"window": 1000, "max_age": 5000, "margin": 0.01}  # quick to decide
LEARNER = {"hidden": [16], "seed": 0}  # on teacher_stream(0): one swap, then a return challenge


def teacher_stream(seed: int = 0) -> list[tuple[dict[str, float], int]]:
    """A random tanh network's argmax (teacher A), then another's: the warm model must unlearn
    A, which a fresh one need not (tests/model/test_challenger.py)."""
    rng = np.random.default_rng(seed)

    def teacher():
        W1, b1 = rng.normal(size=(4, 8)) / 2, rng.normal(size=8) * 0.5
        W2 = rng.normal(size=(8, 3)) * 3 / np.sqrt(8)
        return lambda X: (np.tanh(X @ W1 + b1) @ W2).argmax(axis=1)

    a, b = teacher(), teacher()
    X = rng.normal(size=(N, 4))
    y = np.concatenate([a(X[:BEFORE]), b(X[BEFORE:])])
    return [
        ({f"x{j}": float(v) for j, v in enumerate(x)}, int(c)) for x, c in zip(X, y, strict=True)
    ]


def reference_run(samples) -> tuple[Challenged, list[int], list[int]]:
    """The uninterrupted learner, and the rows at which a challenge was active or a swap had
    just happened (where the service is killed)."""
    model = Challenged(
        LifelongClassifier(Settings(learner=LEARNER).learner_config()),
        settings=ChallengerConfig(**CHALLENGER),
    )
    challenging, swapped, swaps = [], [], 0
    for row, sample in enumerate(samples, start=1):
        model.learn_one(sample.features, sample.label)
        if row % 50:
            continue
        stats = model.stats().challenger
        if stats.active and stats.age > 300:
            challenging.append(row)
        if sum(stats.swaps.values()) > swaps:
            swaps = sum(stats.swaps.values())
            swapped.append(row)
    return model, challenging, swapped


def test_a_challenger_survives_sigkills_during_its_challenge_and_after_a_swap(
    kafka_bootstrap, kafka_topic, service
):
    topic = kafka_topic(partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)
    for features, label in teacher_stream():
        producer.send(topic, value=encode_json(features, label))
    producer.flush()
    producer.close()
    defaults = Settings()
    samples = decode_records(
        map(as_message, read_topic(kafka_bootstrap, topic, N)),
        default="json",
        task="classification",
        max_features=defaults.max_features,
        max_bytes=defaults.max_record_bytes,
    ).samples
    reference, challenging, swapped = reference_run(samples)
    assert challenging and swapped, "the stream must make the reference challenge and swap"

    svc = service(
        topic,
        challenger=True,
        challenger_settings=json.dumps(CHALLENGER),
        learner=json.dumps(LEARNER),
        checkpoint_every_samples=500,
        kafka_poll_max_records=100,
    )
    for run, point in enumerate((challenging[0], swapped[0] + 50)):
        svc.start(kafka_group=f"{topic}-run{run}")  # a fresh group: no wait for the old member
        wait_for(lambda p=point: (svc.samples_learned() or 0) >= p, f"{point} samples learned")
        svc.kill()
    svc.start(kafka_group=f"{topic}-final")
    svc.wait_learned(N)
    metrics = svc.metrics()
    swaps = sum(v for (name, _), v in metrics.items() if name == "lifelong_model_swaps_total")
    assert swaps == sum(reference.stats().challenger.swaps.values())
    written = svc.client.checkpoint()
    assert svc.stop() == 0
    path = Path(written.path)
    checkpoint = decode(path.read_bytes(), path, sequence=0)
    assert checkpoint.offsets == {f"{topic}:0": N}
    assert CheckpointStore(svc.checkpoint_dir).load_latest().samples_learned == N
    assert_same_learned_state(checkpoint.learner_state, reference.to_bytes())
