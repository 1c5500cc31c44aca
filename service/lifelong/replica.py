"""A prediction replica (`lifelong serve-predictions`): PredictionService answered from the
snapshot file a learner writes (`lifelong serve --snapshot-file`), in a process of its own, so
serving does not share the learner's GIL, or on any machine from the snapshot topic a Kafka
learner publishes to (`--snapshot-topic`). Until a first snapshot is read the replica answers as
a server that has learned nothing (FAILED_PRECONDITION) and its health says NOT_SERVING.
"""

from __future__ import annotations

import logging
import threading

from lifelong import process
from lifelong.config import ConfigError, Settings
from lifelong.http import serve_http, status_board
from lifelong.metrics import PredictionMetrics
from lifelong.model.importpath import resolve
from lifelong.serving.replica import SnapshotReader, TopicFollower
from lifelong.serving.server import GrpcServer
from lifelong.status import ReplicaProbe

log = logging.getLogger(__name__)


class Replica:
    """One `lifelong serve-predictions` process: `start()`, then `stop()` (or `run()`)."""

    def __init__(self, settings: Settings) -> None:
        if settings.snapshot_topic and not settings.kafka_bootstrap:
            raise ConfigError("snapshot_topic needs kafka_bootstrap: the broker to read it from")
        if settings.snapshot_file is None and not settings.snapshot_topic:
            raise ConfigError(
                "serve-predictions needs snapshot_file (--snapshot-file): the file a "
                "`lifelong serve --snapshot-file` learner writes, or snapshot_topic "
                "(--snapshot-topic) with kafka_bootstrap: the topic a Kafka learner publishes to"
            )
        process.prepare(settings)
        if settings.model:  # importing `model`'s module registers its snapshots' kind
            resolve(settings.model)
        self.settings = settings
        self.metrics = PredictionMetrics()
        if settings.snapshot_topic:
            self.reader = TopicFollower(settings, self.metrics)
            source = f"kafka topic {settings.snapshot_topic}"
        else:
            self.reader = SnapshotReader(settings.snapshot_file, settings.task, self.metrics)
            source = str(settings.snapshot_file)
        self.source = source
        self.metrics.watch_version(lambda: self.reader.predictor.version)
        self.grpc = GrpcServer(self.reader, settings, predictions_only=True)
        self.board = status_board(settings, ReplicaProbe(self.reader, source))
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: list = []

    def start(self) -> None:
        self._http = serve_http(self.settings, self.metrics, self.board)
        ready = self.reader.poll() if isinstance(self.reader, SnapshotReader) else False
        self.grpc.start(serving=ready)
        self._threads.append(threading.Thread(target=self._poll, args=(ready,), name="snapshot"))
        if self.board is not None:
            status = threading.Thread(target=self.board.run, args=(self.done,), name="status")
            self._threads.append(status)
        for thread in self._threads:
            thread.start()
        log.info("serving predictions from %s", self.source)

    def _poll(self, ready: bool) -> None:
        # The topic's poll waits for records itself; the file's is a stat, paced here.
        follows = isinstance(self.reader, TopicFollower)
        pause = 0.0 if follows else self.settings.snapshot_poll_seconds
        try:
            while not self.done.wait(pause):
                if self.reader.poll() and not ready:
                    ready = True
                    self.grpc.set_serving()
        finally:
            if follows:
                self.reader.close()

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; the exit status."""
        process.run_until_signalled(self.start, self.stop, self.done)
        return 0

    def stop(self, grace: float = 5.0) -> None:
        self.done.set()
        self.grpc.stop(grace)
        for thread in self._threads:
            thread.join()
        for server in self._http:
            server.shutdown()
