"""`ModelHost`: what the adapters (gRPC, Kafka, the demo) learn through and serve from. It puts
together the parts that do the work: `Learning` (the single writer, in order), `Publisher` (the
serving snapshot and its file) and `Checkpointer` (state + offsets, when due), and counts what
they did in the service's metrics.

>>> from lifelong.model import LifelongClassifier, LearnerConfig
>>> from lifelong.samples import Sample
>>> host = ModelHost(LifelongClassifier(LearnerConfig(seed=0)), refresh_every_samples=2)
>>> host.learn([Sample({"x": 1.0}, None, "a"), Sample({"x": -1.0}, None, "b")], source="grpc")
2
>>> host.predictor.version
2

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lifelong.admission import Limits
from lifelong.checkpoint import Checkpoint, CheckpointStore
from lifelong.checkpointing import Checkpointer, CheckpointInfo
from lifelong.learning import Learning
from lifelong.metrics import ServiceMetrics
from lifelong.model import (
    Learner,
    LearnerStats,
    Predictor,
    TorchModuleClassifier,
    TorchModuleRegressor,
    load,
)
from lifelong.publishing import Publisher, Sink
from lifelong.samples import InvalidSample, Rows, Sample

__all__ = ["CheckpointInfo", "ModelHost", "NotFreezable"]


class ModelHost:
    """The learner, its stream offsets, the serving snapshot and checkpoints.

    Parameters
    ----------
    learner
        Any `lifelong.model.Learner`, fresh or loaded from a checkpoint.
    checkpoints
        Where `checkpoint()` writes; None disables checkpoints.
    offsets
        Kafka offsets the learner's state reflects ("topic:partition" -> next offset to read).
    refresh_every_samples, refresh_every_seconds
        Staleness bound of the serving snapshot.
    max_model_features, limits
        What samples may add to the model (`lifelong.admission`); default: `Limits` with
        `max_model_features`.
    metrics
        Counts samples learned and rejected, checkpoints; exports the learner's statistics.
    snapshot_file
        Where every published snapshot is also written, for prediction replicas; None: none.
    fresh
        Makes a fresh learner of the service's settings, for `reset`; None: no reset.
    snapshot_sinks
        Other places snapshots go for replicas (`publishing.Sink`: the snapshot topic).
    """

    def __init__(
        self,
        learner: Learner,
        *,
        checkpoints: CheckpointStore | None = None,
        offsets: Mapping[str, int] | None = None,
        refresh_every_samples: int = 100,
        refresh_every_seconds: float = 1.0,
        max_model_features: int = 10_000,
        metrics: ServiceMetrics | None = None,
        snapshot_file: Path | None = None,
        fresh: Callable[[], Learner] | None = None,
        limits: Limits | None = None,
        snapshot_sinks: Sequence[Sink] = (),
    ) -> None:
        limits = limits or Limits(max_model_features=max_model_features)
        self.learning = Learning(learner, offsets, limits)
        self.task = learner.task
        self.publisher = Publisher(
            self.learning,
            every_samples=refresh_every_samples,
            every_seconds=refresh_every_seconds,
            snapshot_path=snapshot_file,
            sinks=snapshot_sinks,
        )
        self.checkpoints = checkpoints
        self.checkpointer = Checkpointer(self.learning, checkpoints) if checkpoints else None
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.metrics.watch(self.task, self.stats, lambda: self.publisher.predictor.version)
        self._config = getattr(learner, "config", None)
        self._fresh = fresh

    @property
    def predictor(self) -> Predictor:
        """The current serving snapshot; a plain read, no lock."""
        return self.publisher.predictor

    @property
    def offsets(self) -> dict[str, int]:
        return self.learning.offsets

    @property
    def feature_names(self) -> tuple:
        return self.learning.feature_names

    @property
    def samples_learned(self) -> int:
        return self.learning.samples_learned

    def learn(
        self,
        batch: Sequence[Sample | Rows],
        *,
        source: str,
        offsets: Mapping[str, int] | None = None,
        on_rejected: Callable[[int, InvalidSample], None] | None = None,
        epoch: int | None = None,
    ) -> int:
        """Learn `batch` in order and record `offsets` with it; how many samples were learned.
        A rejected sample is counted and passed to `on_rejected` with its position in the
        batch (a `Rows` counting one per row). `epoch`: `Learning.learn`'s."""
        outcome = self.learning.learn(batch, offsets, epoch)
        self.publisher.learned(outcome.learned)
        if outcome.learned:
            self.metrics.learned(source).inc(outcome.learned)
            self.metrics.learn_latency.observe(outcome.seconds / outcome.learned)
        for position, error in outcome.rejected:
            self.metrics.rejected(source, error.reason).inc()
            if on_rejected is not None:
                on_rejected(position, error)
        return outcome.learned

    def take_over(self, learner: Learner, offsets: Mapping[str, int]) -> None:
        """Go on from `learner` and its `offsets` (a standby taking over), serving it at once."""
        self.learning.replace(learner, offsets)
        if self.checkpointer is not None:
            self.checkpointer.resumed()
        self.publisher.publish()

    def refresh(self) -> bool:
        """`Publisher.refresh`: publish a snapshot whose samples waited too long."""
        return self.publisher.refresh()

    def stats(self) -> LearnerStats:
        """The learner's statistics, read between learning steps."""
        return self.learning.read(_stats)

    def config(self):
        """The learner's configuration (a `LearnerConfig` for the built-in one), or None."""
        return self._config

    def checkpoint_due(self, every_samples: int, every_seconds: float) -> bool:
        return self.checkpointer is not None and self.checkpointer.due(every_samples, every_seconds)

    def checkpoint(self) -> CheckpointInfo:
        """Write the learner's state and offsets to the checkpoint store."""
        if self.checkpointer is None:
            raise RuntimeError("no checkpoint directory configured (set checkpoint_dir)")
        info = self.checkpointer.checkpoint()
        self.metrics.checkpoints.inc()
        self.metrics.last_checkpoint_timestamp.set(info.created)
        return info

    # -- operators' actions (AdminService); each is logged by the caller with who asked

    @property
    def paused(self) -> bool:
        return self.learning.paused

    def pause(self) -> None:
        """Stop learning after the batch in progress; predictions go on."""
        self.learning.pause()
        self.metrics.learning_paused.set(1)
        self.metrics.admin_actions["pause"].inc()

    def resume(self) -> None:
        self.learning.resume()
        self.metrics.learning_paused.set(0)
        self.metrics.admin_actions["resume"].inc()

    def checkpoints_on_disk(self) -> list[Checkpoint]:
        """The intact checkpoints, newest first."""
        if self.checkpoints is None:
            raise RuntimeError("no checkpoint directory configured (set checkpoint_dir)")
        return list(self.checkpoints.checkpoints())

    def roll_back(self, sequence: int) -> CheckpointInfo:
        """Learn and serve from checkpoint `sequence`'s model, at its offsets; saved at once as
        the newest checkpoint, so a restart keeps it. KeyError if there is no such checkpoint,
        ValueError if it holds another task's model."""
        if self.checkpoints is None:
            raise RuntimeError("no checkpoint directory configured (set checkpoint_dir)")
        found = self.checkpoints.load(sequence)
        if found is None:
            raise KeyError(sequence)
        self._replace(load(found.learner_state), found.offsets, "roll_back")
        return self.checkpoint()

    @property
    def can_reset(self) -> bool:
        return self._fresh is not None

    def reset(self) -> CheckpointInfo | None:
        """Learn and serve from a fresh model, the streams going on where they are; saved at
        once (when checkpoints are on) so a restart keeps it."""
        if self._fresh is None:
            raise RuntimeError("this host cannot make a fresh model")
        self._replace(self._fresh(), None, "reset")
        return self.checkpoint() if self.checkpointer is not None else None

    def freeze(
        self, names: Sequence[str], frozen: bool = True
    ) -> tuple[tuple[str, ...], CheckpointInfo | None]:
        """Stop (`frozen`) or start again learning a torch module's named submodules (or
        parameters), between learning steps; saved at once (when checkpoints are on) so a
        restart keeps it. What is frozen now, and the checkpoint. `NotFreezable` for a learner
        of another kind, ValueError for a name the module does not have (nothing changes)."""
        self.learning.change(lambda learner: _freeze(learner, names, frozen))
        self.metrics.admin_actions["freeze" if frozen else "unfreeze"].inc()
        now = self.learning.read(_frozen)
        return now, self.checkpoint() if self.checkpointer is not None else None

    def _replace(self, learner: Learner, offsets: Mapping[str, int] | None, action: str) -> None:
        self.learning.replace(learner, offsets)
        self.publisher.publish()
        self.metrics.admin_actions[action].inc()


def _stats(learner: Learner) -> LearnerStats:
    return learner.stats()


class NotFreezable(TypeError):
    """The learner has no submodules to freeze (only a torch module's do)."""


def _freeze(learner: Learner, names: Sequence[str], frozen: bool) -> None:
    if not isinstance(learner, TorchModuleClassifier | TorchModuleRegressor):
        raise NotFreezable(
            f"only a torch module's submodules can be frozen or unfrozen; this server's model "
            f"is a {type(learner).__name__}"
        )
    if frozen:
        learner.freeze(names)
    else:
        learner.unfreeze(names)


def _frozen(learner: Learner) -> tuple[str, ...]:
    return (
        learner.frozen if isinstance(learner, TorchModuleClassifier | TorchModuleRegressor) else ()
    )
