"""What a prediction replica (`lifelong.replica`) answers from: the snapshot file a learner
writes (`lifelong serve --snapshot-file`, `SnapshotReader`) or, on any machine, the snapshot topic
a Kafka learner publishes to (`--snapshot-topic`, `TopicFollower`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from lifelong import snapshot_file
from lifelong.config import Settings
from lifelong.metrics import PredictionMetrics
from lifelong.model import MLPPredictor
from lifelong.samples import Task

log = logging.getLogger(__name__)


class SnapshotReader:
    """A `PredictionSource`: the snapshot in `path`, read again by `poll()` when it changed."""

    def __init__(self, path: Path, task: Task, metrics: PredictionMetrics) -> None:
        self.path = path
        self.task = task
        self.metrics = metrics
        self.predictor = MLPPredictor.empty(task)
        self._seen: tuple[int, int, int] | None = None  # the file last read or refused
        self._error: str | None = None  # the last error reading it, logged once

    def poll(self) -> bool:
        """Read the file if it changed since the last look; whether a new snapshot came in."""
        try:
            seen = _identity(os.stat(self.path))
            if seen == self._seen:
                return False
            with open(self.path, "rb") as file:  # the file as opened, even if replaced meanwhile
                seen, data = _identity(os.fstat(file.fileno())), file.read()
        except FileNotFoundError:  # not written yet
            return False
        except OSError as e:  # e.g. no permission: said once, tried again at every poll
            if str(e) != self._error:
                self._error = str(e)
                log.error("cannot read the snapshot file %s: %s", self.path, e)
            return False
        self._error = None
        try:
            predictor = snapshot_file.load(data)
            if predictor.task != self.task:
                raise ValueError(f"it holds a {predictor.task} model, but task is {self.task}")
        except ValueError as e:
            self._seen = seen  # refused once, not at every poll
            log.error(
                "snapshot file %s refused, still serving version %d: %s",
                self.path,
                self.predictor.version,
                e,
            )
            return False
        self._seen, self.predictor = seen, predictor
        log.debug("snapshot version %d read from %s", predictor.version, self.path)
        return True


class TopicFollower:
    """A `PredictionSource`: the latest snapshot of the snapshot topic (`lifelong.snapshot_topic`),
    read from its beginning at start and followed after. During the catch-up (up to the end the
    topic had at start) only the last complete snapshot is loaded. One that is corrupt or
    foreign is refused, logged and counted (`lifelong_snapshots_refused_total{reason}`), and the
    previous stays. `poll()` runs in one thread (the consumer's)."""

    def __init__(self, settings: Settings, metrics: PredictionMetrics) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        from lifelong.snapshot_topic import REFUSALS, Assembler, consumer_config
        from prometheus_client import Counter

        self.task = settings.task
        self.topic = settings.snapshot_topic
        self.metrics = metrics
        self.predictor = MLPPredictor.empty(settings.task)
        self.published: float | None = None  # Unix time the served snapshot was published
        self.assembler = Assembler(model=settings.kafka_group, task=settings.task)
        self.consumer = Consumer(consumer_config(settings))
        self.partition = TopicPartition(self.topic, 0, OFFSET_BEGINNING)
        self.consumer.assign([self.partition])
        self._end_at_start: int | None = None  # the topic's end offset at start, once known
        self._error: str | None = None  # the last error reading it, logged once
        self._position = 0  # after the last record read
        self._live = False  # caught up: each snapshot is loaded as it comes
        self._candidate = None  # the newest complete snapshot not loaded yet
        refused = Counter(
            "lifelong_snapshots_refused",
            "Snapshots from the snapshot topic refused (corrupt or foreign); the previous stays.",
            ["reason"],
            registry=metrics.registry,
        )
        self.refused = {reason: refused.labels(reason) for reason in REFUSALS}
        metrics.registry.register(_StalenessCollector(self))

    def _end(self) -> int | None:
        from confluent_kafka import KafkaException

        try:
            return self.consumer.get_watermark_offsets(self.partition, timeout=5.0)[1]
        except KafkaException as e:  # the broker not there yet, the topic not made yet
            if str(e) != self._error:  # said once, tried again every second
                self._error = str(e)
                log.warning("cannot read the end of the snapshot topic %s: %s", self.topic, e)
            time.sleep(1.0)
            return None

    def poll(self, timeout: float = 0.25) -> bool:
        """Read what came; whether a new snapshot is served."""
        from lifelong.snapshot_topic import Refused

        if self._end_at_start is None:
            self._end_at_start = self._end()
            if self._end_at_start is None:
                return False
        records = self.consumer.consume(num_messages=100, timeout=timeout)
        for record in records:
            if record.error() is not None:
                log.warning("snapshot topic %s: %s", self.topic, record.error())
                continue
            self._position = record.offset() + 1
            try:
                assembled = self.assembler.add(record.key(), record.value(), record.headers())
            except Refused as e:
                self._refuse(e.reason, str(e))
                continue
            if assembled is not None:
                self._candidate = assembled
        # Caught up: past the end the topic had at start, or nothing more to read (the end may
        # be a transaction marker, which is never handed over).
        self._live = self._live or not records or self._position >= self._end_at_start
        if self._candidate is None or not self._live:
            return False
        assembled, self._candidate = self._candidate, None
        return self._load(assembled)

    def _load(self, assembled) -> bool:
        try:
            predictor = snapshot_file.load(assembled.payload)
            if predictor.task != self.task:
                raise ValueError(f"it holds a {predictor.task} model, but task is {self.task}")
        except ValueError as e:
            self._refuse("invalid", f"snapshot {assembled.manifest.id}: {e}")
            return False
        self.predictor, self.published = predictor, assembled.manifest.published
        log.debug("snapshot version %d read from %s", predictor.version, self.topic)
        return True

    def _refuse(self, reason: str, message: str) -> None:
        self.refused[reason].inc()
        log.error(
            "snapshot from %s refused (%s), still serving version %d: %s",
            self.topic, reason, self.predictor.version, message,
        )  # fmt: skip

    def close(self) -> None:
        self.consumer.close()


class _StalenessCollector:
    """`lifelong_model_staleness_seconds`: now minus the served snapshot's publication time
    (none before the first snapshot)."""

    def __init__(self, follower: TopicFollower) -> None:
        self.follower = follower

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        published = self.follower.published
        family = GaugeMetricFamily(
            "lifelong_model_staleness_seconds",
            "Now minus the publication time of the snapshot served.",
        )
        if published is not None:
            family.add_metric([], max(0.0, time.time() - published))
        yield family


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
