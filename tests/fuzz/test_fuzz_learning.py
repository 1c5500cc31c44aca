"""A bounded fuzz run, in process: tens of thousands of generated Kafka records (learnable ones
among hostile ones of every kind: `fuzz.hostile.HostileStream`) through the service's own decoder
(`decode_poll`) into a real learner through `ModelHost.learn`, poll by poll as the Kafka loop
does, without a broker. No exception escapes, every refused record has a reason, learned +
refused = produced, and the learner's state and predictions stay finite.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import Counter

import numpy as np
import pytest
from confluent_kafka import Message
from fuzz.hostile import HostileStream
from fuzz.rules import is_text
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.ingest.codecs import decode_poll
from lifelong.samples import REASONS
from testsupport import small_learner

RECORDS = 20_000
# Why a learnable record may still be refused: a step the learner refuses; for a dense vector,
# a model grown past its width (by records with new features).
MAY_REFUSE = {"valid": {"unlearnable"}, "dense": {"dense_size_mismatch", "unlearnable"}}


def finite_numbers(obj, where="stats") -> list[str]:
    """Where `obj` (a dataclass of numbers, lists and dicts) holds a number that is not finite."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return [w for k, v in obj.items() for w in finite_numbers(v, f"{where}.{k}")]
    if isinstance(obj, list | tuple):
        return [w for i, v in enumerate(obj) for w in finite_numbers(v, f"{where}[{i}]")]
    if isinstance(obj, float) and not math.isfinite(obj):
        return [where]
    return []


def assert_finite_model(host: ModelHost, rng: random.Random) -> None:
    assert finite_numbers(host.stats()) == []
    predictor = host.predictor
    names = predictor.feature_names
    X = np.array([[rng.uniform(-3, 3) for _ in names] for _ in range(64)])
    proba = predictor.predict_proba_dense(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    one = predictor.predict_proba_one({name: rng.uniform(-3, 3) for name in names[:2]})
    assert all(math.isfinite(p) for p in one.values())


@pytest.mark.parametrize("seed", [0])
def test_tens_of_thousands_of_hostile_records_through_decoder_and_learner(seed):
    settings = Settings()  # the service's limits: max_features, max_record_bytes...
    # A model of at most 1000 features: records that would grow it beyond are refused (as
    # too_many_features), and learning stays fast enough for CI.
    host = ModelHost(small_learner(seed=seed), refresh_every_samples=100, max_model_features=1000)
    stream = HostileStream(seed=seed, huge=50_000, hostile_fraction=0.4)
    rng = random.Random(seed)
    kinds: list[str] = []
    refused: dict[int, tuple[str, str]] = {}  # offset -> (reason, message)
    learned = 0
    started = time.perf_counter()
    produced = stream.records(RECORDS)
    while len(kinds) < RECORDS:
        poll = []
        for kind, value, headers in produced:
            poll.append(
                Message(
                    topic="samples", partition=0, offset=len(kinds), value=value,
                    headers=headers or None,
                )
            )  # fmt: skip
            kinds.append(kind)
            if len(poll) >= rng.randint(1, settings.kafka_poll_max_records):
                break
        decoded = decode_poll(
            poll,
            default=settings.value_format,
            task="classification",
            max_features=settings.max_features,
            max_bytes=settings.max_record_bytes,
            names=host.feature_names,
        )
        for record, error in decoded.rejected:
            refused[record.offset()] = (error.reason, error.message)

        def on_rejected(position, error, records=decoded.records):
            offset = records[position].offset()
            assert offset not in refused, "refused twice"
            refused[offset] = (error.reason, error.message)

        learned += host.learn(
            decoded.items, source="kafka", offsets={"samples:0": len(kinds)},
            on_rejected=on_rejected,
        )  # fmt: skip
        if rng.random() < 0.02:
            assert_finite_model(host, rng)
    elapsed = time.perf_counter() - started

    assert learned + len(refused) == RECORDS == len(kinds)
    assert host.samples_learned == learned
    assert host.offsets == {"samples:0": RECORDS}
    for reason, message in refused.values():
        assert reason in REASONS and message and is_text(message)
    by_kind = Counter((kinds[offset], reason) for offset, (reason, _) in refused.items())
    for kind, reasons in MAY_REFUSE.items():
        assert {r for k, r in by_kind if k == kind} <= reasons, by_kind
    assert by_kind["valid", "unlearnable"] < 0.01 * Counter(kinds)["valid"], by_kind
    assert set(kinds) - set(MAY_REFUSE) == {kind for kind, _ in stream.kinds}  # every kind sent
    assert_finite_model(host, rng)
    print(
        f"{RECORDS} records in {elapsed:.1f} s: {learned} learned, {len(refused)} refused "
        f"{dict(Counter(reason for reason, _ in refused.values()))}; "
        f"model: {len(host.feature_names)} features, {len(host.predictor.classes)} classes"
    )
