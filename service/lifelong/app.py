"""Wiring: settings -> learner (newest checkpoint, or fresh) -> host -> gRPC, /metrics, the status
page and the streams that learn; graceful shutdown.

Shutdown (SIGTERM, SIGINT, or `App.stop`): health turns NOT_SERVING and the gRPC server stops
accepting calls, giving running ones a grace period; the learning threads finish their current
batch (the Kafka loop then checkpoints and commits its offsets); a final checkpoint is written.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from lifelong import demo
from lifelong.checkpoint import CheckpointStore
from lifelong.config import ConfigError, Settings
from lifelong.host import ModelHost
from lifelong.http import serve_http, status_board
from lifelong.metrics import ServiceMetrics
from lifelong.serving import GrpcServer
from lifelong.status import LearnerProbe

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def load_learner(settings: Settings, checkpoints: CheckpointStore | None):
    """The learner and its offsets from the newest checkpoint, or a fresh learner."""
    from lifelong.model import LifelongClassifier, LifelongRegressor, load

    factory = settings.learner_factory()  # imported before a checkpoint of its kind is read
    checkpoint = checkpoints.load_latest() if checkpoints else None
    if checkpoint is None:
        log.info("starting a fresh %s model", settings.task)
        if factory is not None:
            return factory(**settings.model_args), {}
        model = LifelongClassifier if settings.task == "classification" else LifelongRegressor
        return model(settings.learner_config()), {}
    learner = load(checkpoint.learner_state)
    kind = learner.task
    if kind != settings.task:
        raise ConfigError(
            f"{checkpoint.path} holds a {kind} model but task is {settings.task}: "
            "set the task it was trained for, or use another checkpoint_dir"
        )
    log.info(
        "resuming from %s: %d samples learned (its learner settings apply)",
        checkpoint.path,
        checkpoint.samples_learned,
    )
    return learner, checkpoint.offsets


def checkpoint_store(settings: Settings):
    """Where checkpoints go: the checkpoint topic with standbys, else `checkpoint_dir` (or
    nowhere)."""
    if settings.kafka_standby:
        from lifelong.checkpoint_topic import TopicCheckpoints

        return TopicCheckpoints(settings, settings.checkpoints_topic)
    if settings.checkpoint_dir:
        return CheckpointStore(settings.checkpoint_dir, settings.checkpoint_keep)
    return None


def kafka_loop(settings: Settings) -> Callable:
    """The Kafka learn loop; with standbys, one that waits to be elected first."""
    if not settings.kafka_standby:
        from lifelong import ingest

        return ingest.run
    from lifelong.ingest import standby

    return functools.partial(standby.run, fresh=lambda: load_learner(settings, None)[0])


def snapshot_sinks(settings: Settings) -> list:
    """Where snapshots go for replicas besides the file: the snapshot topic, with Kafka."""
    if settings.model_topic is None:
        return []
    from lifelong.snapshot_topic import TopicSink

    return [TopicSink(settings, settings.model_topic)]


class App:
    """One `lifelong serve` process. `start()`, then `stop()` (or `run()`, which waits for a
    signal)."""

    def __init__(self, settings: Settings) -> None:
        import torch

        # One intra-op thread: per-example work gains nothing from more, and the gRPC workers
        # and the learn loop already share the cores (design.md, the learner).
        torch.set_num_threads(1)
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
        settings.check_learning()
        self.settings = settings
        snapshot_dir = settings.snapshot_file.parent if settings.snapshot_file else None
        if snapshot_dir is not None and not snapshot_dir.is_dir():
            raise ConfigError(
                f"snapshot_file: directory {snapshot_dir} does not exist; create it (a tmpfs "
                "shared with the prediction replicas) or leave snapshot_file unset"
            )
        self.metrics = ServiceMetrics()
        self.checkpoints = checkpoint_store(settings)
        # With Kafka the learn loop checkpoints (after flushing dead letters, before committing);
        # otherwise the app does, periodically and at shutdown.
        self.checkpointing = self.checkpoints is not None and not settings.kafka_bootstrap
        # With standbys the elected learner loads the newest checkpoint (lifelong.ingest.standby).
        learner, offsets = load_learner(
            settings, None if settings.kafka_standby else self.checkpoints
        )
        self.host = ModelHost(
            learner,
            checkpoints=self.checkpoints,
            offsets=offsets,
            refresh_every_samples=settings.refresh_every_samples,
            refresh_every_seconds=settings.refresh_every_seconds,
            max_model_features=settings.max_model_features,
            metrics=self.metrics,
            snapshot_file=settings.snapshot_file,
            snapshot_sinks=snapshot_sinks(settings),
        )
        self.grpc = GrpcServer(self.host, settings)
        self.board = status_board(settings, LearnerProbe(self.host, self.metrics.consumer_lag))
        self.stopping = threading.Event()  # tells the learning threads to finish
        self.done = threading.Event()  # a signal arrived, or a learning thread failed
        self.failed = False
        self._threads: list[threading.Thread] = []
        self._http: list = []

    def start(self) -> None:
        settings = self.settings
        self._http = serve_http(settings, self.metrics, self.board)
        self.grpc.start()
        if settings.kafka_bootstrap:
            waiting = lambda waits: self.grpc.set_learning(not waits)  # noqa: E731
            self._spawn("kafka", kafka_loop(settings), self.host, settings, self.stopping, waiting)
        elif settings.demo:
            self._spawn("demo", demo.run, self.host, settings.demo_rate, self.stopping)
            log.info(
                "try: lifelong predict --target localhost:%d --features '%s'",
                self.grpc.port,
                '{"x0": 0.2, "x1": 0.7, "x2": 0.5, "x3": 0.1}',
            )
        self._spawn("housekeeping", self._housekeeping)
        if self.board is not None:
            self._spawn("status", self.board.run, self.stopping)

    def _spawn(self, name: str, target: Callable, *args) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("%s thread failed; shutting down", name)
                self.failed = True
                self.done.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _housekeeping(self) -> None:
        """Publish snapshots whose samples waited too long; checkpoint when due."""
        s = self.settings
        while not self.stopping.wait(min(s.refresh_every_seconds, 1.0) or 0.1):
            self.host.refresh()
            if self.checkpointing and self.host.checkpoint_due(
                s.checkpoint_every_samples, s.checkpoint_every_seconds
            ):
                try:
                    self.host.checkpoint()
                except OSError:  # e.g. a full disk: keep serving, try again when next due
                    log.exception("checkpoint failed")

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; the exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _: self._on_signal(signum))
        self.start()
        self.done.wait()
        self.stop()
        return 1 if self.failed else 0

    def _on_signal(self, signum: int) -> None:
        log.info("%s: shutting down", signal.Signals(signum).name)
        self.done.set()

    def stop(self, grace: float = 5.0) -> None:
        self.grpc.stop(grace)
        self.stopping.set()
        for thread in self._threads:
            thread.join()
        if self.checkpointing and self.host.checkpoint_due(1, float("inf")):
            self.host.checkpoint()
        for sink in self.host.publisher.sinks:
            getattr(sink, "close", lambda: None)()  # the topic's: what is in flight
        for server in self._http:
            server.shutdown()
        log.info("stopped after %d samples learned", self.host.samples_learned)
