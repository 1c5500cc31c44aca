"""Wiring: settings -> learner (newest checkpoint, or fresh) -> host -> gRPC, /metrics, the status
page and the streams that learn; graceful shutdown.

Shutdown (SIGTERM, SIGINT, or `App.stop`): health turns NOT_SERVING and the gRPC server stops
accepting calls, giving running ones a grace period; the learning threads finish their current
batch (the Kafka loop then checkpoints and commits its offsets); a final checkpoint is written.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

from lifelong import demo, process
from lifelong.admission import Limits
from lifelong.checkpoint import CheckpointStore
from lifelong.config import STATE_KEY_ENV, ConfigError, Settings
from lifelong.host import ModelHost
from lifelong.http import serve_http, status_board
from lifelong.metrics import ServiceMetrics
from lifelong.model.base import Learner
from lifelong.serving import GrpcServer
from lifelong.status import LearnerProbe

log = logging.getLogger(__name__)


def fresh_learner(settings: Settings) -> Learner:
    """A learner that has learned nothing, of the kind `model` names (docs/models.md), with a
    challenger when `challenger` is set."""
    from lifelong.model import (
        Challenged,
        ChallengerConfig,
        LifelongClassifier,
        LifelongRegressor,
        Remediated,
        Rule,
    )
    from lifelong.model.factory import make_learner

    if not settings.model:
        mlp = LifelongClassifier if settings.task == "classification" else LifelongRegressor
        learner = mlp(settings.learner_config())
        if settings.challenger:
            try:
                config = ChallengerConfig(**settings.challenger_settings)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"challenger_settings: {e}") from None
            learner = Challenged(learner, settings=config)
        if not settings.remediations:
            return learner
        try:
            rules = [Rule(symptom, **rule) for symptom, rule in settings.remediations.items()]
            return Remediated(learner, rules)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"remediations: {e}") from None
    if settings.challenger or settings.remediations:
        raise ConfigError(
            "challenger and remediations: only the built-in MLP has them yet; unset model or them"
        )
    try:
        return make_learner(
            settings.task, settings.model, settings.model_args, settings.learner,
            settings.state_key(),
        )  # fmt: skip
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model {settings.model}: {e}") from None


def load_learner(settings: Settings, checkpoints: CheckpointStore | None):
    """The learner and its offsets from the newest checkpoint, or a fresh learner of the kind
    `model` names (docs/models.md)."""
    from lifelong.model import load
    from lifelong.model.factory import model_kind
    from lifelong.model.river_model import set_state_key

    try:
        kind = model_kind(settings.model, settings.task, settings.model_args)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {e}") from None
    key = settings.state_key()
    try:
        set_state_key(key)
    except ValueError as e:
        raise ConfigError(f"{STATE_KEY_ENV} / state_key_file: {e}") from None
    if kind == "river" and key is None and (checkpoints is not None or settings.snapshot_file):
        raise ConfigError(
            f"model {settings.model} is a river model: its state is pickle, which this service "
            "writes and reads only inside an HMAC-SHA256-authenticated envelope, and no key is "
            "set. Set LIFELONG_STATE_KEY (or state_key_file) to a secret of at least 16 bytes, "
            "or run it without checkpoint_dir and snapshot_file"
        )
    checkpoint = checkpoints.load_latest() if checkpoints else None
    if checkpoint is None:
        log.info("starting a fresh %s model (%s)", settings.task, settings.model or "built-in")
        return fresh_learner(settings), {}
    try:
        learner = load(checkpoint.learner_state)
    except ValueError as e:  # not authenticated, or not this module's state: never half-loaded
        raise ConfigError(f"{checkpoint.path}: {e}") from None
    saved = {"Lifelong": "mlp", "TorchModule": "torch", "River": "river"}
    saved_kind = next((k for p, k in saved.items() if type(learner).__name__.startswith(p)), None)
    if saved_kind is not None and saved_kind != kind:
        log.warning(
            "%s holds a %s model but the model setting names a %s one: the checkpoint's model "
            "goes on (use another checkpoint_dir to start the new one)",
            checkpoint.path,
            saved_kind,
            kind,
        )
    if learner.task != settings.task:
        raise ConfigError(
            f"{checkpoint.path} holds a {learner.task} model but task is {settings.task}: "
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
        process.prepare(settings)
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
            fresh=lambda: fresh_learner(settings),
            limits=Limits.from_settings(settings),
            snapshot_sinks=snapshot_sinks(settings),
        )
        # With Kafka, gRPC samples go through the topic: learned once, in its offsets.
        self.forward = None
        if settings.kafka_bootstrap:
            from lifelong.ingest.forward import SampleForwarder
            from lifelong.ingest.security import librdkafka_security

            self.forward = SampleForwarder(
                settings.kafka_bootstrap, settings.kafka_topic, librdkafka_security(settings)
            )
        self.grpc = GrpcServer(self.host, settings, forward=self.forward)
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
        process.run_until_signalled(self.start, self.stop, self.done)
        return 1 if self.failed else 0

    def stop(self, grace: float = 5.0) -> None:
        self.grpc.stop(grace)
        if self.forward is not None:
            self.forward.close()
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
