"""`lifelong produce`: feed a river synthetic stream or a CSV file into a Kafka topic.

    lifelong produce --bootstrap localhost:9092 --stream drifting --count 20000 --seed 1
    lifelong produce --topic samples --csv data.csv --target-column label --format protobuf
    LIFELONG_KAFKA_SECURITY_PROTOCOL=sasl_ssl ... lifelong produce --bootstrap broker:9093

The Kafka security settings are the service's (`LIFELONG_KAFKA_*` variables, `--config FILE`).

Records are written in stream order, each with a `content-type` header, with the producer's
idempotence on so retries neither reorder nor duplicate them. Integer feature names (river's
synthetic streams) become `x0`, `x1`, ...

>>> next(samples_from_stream("sine", seed=1, count=2))
({'x0': 0.13436424411240122, 'x1': 0.8474337369372327}, 1)

"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from lifelong.ingest.codecs import CONTENT_TYPES, encode_json, encode_protobuf
from lifelong.samples import Label

__all__ = ["arguments", "command", "produce", "samples_from_csv", "samples_from_stream"]

Sample = tuple[dict[str, float], Label]

CONTENT_TYPE = {fmt: content_type for content_type, fmt in CONTENT_TYPES.items()}
BROKER_TIMEOUT_SECONDS = 10.0  # for the first answer of the broker
STREAMS = ("agrawal", "drifting", "friedman", "hyperplane", "rbf", "sea", "sine")


def synthetic(name: str, *, seed: int, count: int | None) -> Iterable:
    """River's synthetic stream `name`; `friedman` is regression, the others classification."""
    from river.datasets import synth  # seconds to import: only when producing

    middle = (count or 10_000) // 2
    streams = {
        "agrawal": lambda: synth.Agrawal(seed=seed),
        # Agrawal's first concept, then its fifth, switching around the middle of the run.
        "drifting": lambda: synth.ConceptDriftStream(
            stream=synth.Agrawal(classification_function=0, seed=seed),
            drift_stream=synth.Agrawal(classification_function=4, seed=seed),
            position=middle,
            width=max(middle // 10, 1),
            seed=seed,
        ),
        "friedman": lambda: synth.Friedman(seed=seed),
        "hyperplane": lambda: synth.Hyperplane(seed=seed, n_features=10, mag_change=0.001),
        "rbf": lambda: synth.RandomRBFDrift(
            seed_model=seed,
            seed_sample=seed,
            n_centroids=20,
            n_drift_centroids=10,
            change_speed=0.0001,
        ),
        "sea": lambda: synth.SEA(seed=seed),
        "sine": lambda: synth.Sine(seed=seed),
    }
    return streams[name]()


def samples_from_stream(name: str, *, seed: int, count: int | None) -> Iterator[Sample]:
    """`count` samples of the named synthetic stream (all of them if None: endless)."""
    for x, y in itertools.islice(synthetic(name, seed=seed, count=count), count):
        yield {k if isinstance(k, str) else f"x{k}": v for k, v in x.items()}, y


def _label(text: str) -> Label:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def samples_from_csv(path: Path, *, target: str, count: int | None) -> Iterator[Sample]:
    """Rows of a CSV file with a header; `target` is the label, every other column a number.

    Labels that read as integers or numbers are sent as such, anything else as text.
    """
    from river.stream import iter_csv

    rows = iter_csv(path, target=target)
    for line, (x, y) in enumerate(itertools.islice(rows, count), start=2):
        try:
            features = {name: float(value) for name, value in x.items()}
        except ValueError as e:
            raise SystemExit(f"{path}:{line}: features must be numbers ({e})") from None
        yield features, _label(y)


def produce(
    samples: Iterable[Sample],
    *,
    bootstrap: str,
    topic: str,
    fmt: str = "json",
    total: int | None = None,
    progress: bool = True,
    security: Mapping[str, str] | None = None,
) -> int:
    """Write `samples` to `topic` in order; return how many were acknowledged. `security`:
    `librdkafka_security`'s properties (None: plaintext)."""
    from confluent_kafka import KafkaError, Message, Producer

    encode = encode_json if fmt == "json" else encode_protobuf
    headers = [("content-type", CONTENT_TYPE[fmt].encode())]
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "lifelong-produce",
            "linger.ms": 5,
            "enable.idempotence": True,
            "logger": logging.getLogger(__name__),  # not librdkafka's raw "%3|..." lines
            **(security or {}),
        }
    )
    # librdkafka retries an absent broker until each record times out (minutes): ask first.
    producer.list_topics(timeout=BROKER_TIMEOUT_SECONDS)
    sent, shown_at = 0, 0.0
    for features, label in samples:
        value = encode(features, label)
        while True:
            try:
                producer.produce(topic, value, headers=headers, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: wait for deliveries, then again
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
        if progress and time.monotonic() - shown_at >= 0.2:
            shown_at = time.monotonic()
            _show(sent, total, end="")
    producer.flush()
    if progress:
        _show(sent, total, end="\n")
    if failures:
        raise SystemExit(f"{len(failures)} of {sent} records failed, first: {failures[0]}")
    return sent


def _show(sent: int, total: int | None, *, end: str) -> None:
    print(f"\rproduced {sent}" + (f"/{total}" if total else ""), end=end, file=sys.stderr)


def arguments(parser: argparse.ArgumentParser) -> None:
    """The `produce` subcommand's arguments."""
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="lifelong.samples", help="topic to write to")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--stream",
        choices=STREAMS,
        default="agrawal",
        help="river synthetic stream (friedman is regression, the others classification)",
    )
    source.add_argument("--csv", type=Path, help="CSV file with a header row")
    parser.add_argument("--target-column", help="the CSV column holding the label")
    parser.add_argument(
        "--count", type=int, help="samples to send (default: synthetic 10000, CSV all)"
    )
    parser.add_argument("--seed", type=int, default=42, help="synthetic stream seed")
    parser.add_argument("--format", choices=sorted(CONTENT_TYPE), default="json")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file, for its Kafka security settings (kafka_security_protocol, ...)",
    )


def command(args: argparse.Namespace) -> int:
    """Run `lifelong produce`; the exit status."""
    if args.csv is not None:
        if not args.target_column:
            raise SystemExit("--csv needs --target-column")
        samples = samples_from_csv(args.csv, target=args.target_column, count=args.count)
    else:
        args.count = args.count or 10_000
        samples = samples_from_stream(args.stream, seed=args.seed, count=args.count)
    from confluent_kafka import KafkaException
    from lifelong.config import ENV_PREFIX, ConfigError, load_settings
    from lifelong.ingest.security import librdkafka_security

    # The Kafka variables but the bootstrap (--bootstrap's): the service's others are not ours.
    kafka = ENV_PREFIX + "KAFKA_"
    environ = {
        k: v for k, v in os.environ.items() if k.startswith(kafka) and k != kafka + "BOOTSTRAP"
    }
    try:
        security = librdkafka_security(load_settings(environ=environ, config_file=args.config))
    except ConfigError as e:
        raise SystemExit(f"lifelong produce: {e}") from None
    try:
        sent = produce(
            samples,
            bootstrap=args.bootstrap,
            topic=args.topic,
            fmt=args.format,
            total=args.count,
            progress=sys.stderr.isatty(),
            security=security,
        )
    except KafkaException as e:  # e.g. no broker at --bootstrap
        raise SystemExit(f"lifelong produce: {args.bootstrap}: {e.args[0].str()}") from None
    print(f"produced {sent} samples to {args.topic} ({args.format})")
    return 0
