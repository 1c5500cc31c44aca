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
from lifelong.checkpoint import CheckpointStore
from lifelong.checkpointing import Checkpointer, CheckpointInfo
from lifelong.learning import Learning
from lifelong.metrics import ServiceMetrics
from lifelong.model import Learner, LearnerStats, Predictor
from lifelong.publishing import Publisher, Sink
from lifelong.samples import InvalidSample, Rows, Sample

__all__ = ["CheckpointInfo", "ModelHost"]


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
    max_model_features
        Most features the model may grow to (`lifelong.admission`).
    metrics
        Counts samples learned and rejected, checkpoints; exports the learner's statistics.
    snapshot_file
        Where every published snapshot is also written, for prediction replicas; None: none.
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
        snapshot_sinks: Sequence[Sink] = (),
    ) -> None:
        self.learning = Learning(learner, offsets, Limits(max_model_features=max_model_features))
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
    ) -> int:
        """Learn `batch` in order and record `offsets` with it; how many samples were learned.
        A rejected sample is counted and passed to `on_rejected` with its position in the
        batch (a `Rows` counting one per row)."""
        outcome = self.learning.learn(batch, offsets)
        self.publisher.learned(outcome.learned)
        if outcome.learned:
            self.metrics.learned(source).inc(outcome.learned)
            self.metrics.learn_latency.observe(outcome.seconds / outcome.learned)
        for position, error in outcome.rejected:
            self.metrics.rejected(source, error.reason).inc()
            if on_rejected is not None:
                on_rejected(position, error)
        return outcome.learned

    def resume(self, learner: Learner, offsets: Mapping[str, int]) -> None:
        """Go on from `learner` and its `offsets` (a standby taking over), serving it at once."""
        self.learning.replace(learner, offsets)
        if self.checkpointer is not None:
            self.checkpointer.resumed()
        self.publisher.republish()

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
        self.metrics.last_checkpoint_timestamp.set(info.timestamp)
        return info


def _stats(learner: Learner) -> LearnerStats:
    return learner.stats()
