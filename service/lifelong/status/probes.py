"""What the status page shows of a learning service (`LearnerProbe`) or a prediction replica
(`ReplicaProbe`): the numbers recorded each tick (`read`), the charts drawn from them, the counters
whose growth is a marker, and the model as it is now (`now`).

Probes copy what the host, the snapshot and the metrics already hold; they compute no statistic of
their own beyond rates between ticks.

>>> from lifelong.host import ModelHost
>>> from lifelong.model import LearnerConfig, LifelongClassifier
>>> probe = LearnerProbe(ModelHost(LifelongClassifier(LearnerConfig(hidden=(8,)))))
>>> probe.read()["dead_fraction.0"], probe.now()["model"]["state"]
(0.0, 'waiting')

"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lifelong.metrics import RPCS
from lifelong.status.history import Rate

if TYPE_CHECKING:
    from lifelong.host import ModelHost
    from lifelong.serving.predictions import PredictionSource


@dataclass(frozen=True)
class Chart:
    """One chart: its title, the unit of its y axis, and its series as (key, label) pairs."""

    title: str
    unit: str
    series: tuple[tuple[str, str], ...]


class Probe(Protocol):
    role: str
    charts: tuple[Chart, ...]
    markers: dict[str, str]  # counter -> the event its growth marks

    def read(self) -> dict[str, float]:
        """The numbers recorded this tick."""
        ...

    def now(self) -> dict[str, Any]:
        """`model`: what it is and its state; a learner adds `stats` (`GetPlasticityStats`')."""
        ...


# (LayerStats field, chart title, unit): one chart per measure, one series per hidden layer.
LAYER_CHARTS = (
    ("dead_fraction", "Dead units", "fraction of the layer, active on no input of a window"),
    ("dormant_fraction", "Dormant units", "fraction of the layer, active on < 1% of a window"),
    ("tau_dormant_fraction", "τ-dormant units (ReDo)", "fraction of the layer"),
    ("effective_rank", "Effective rank", "of the layer's activations, at most its width"),
    ("mean_abs_weight", "Mean |w|", "mean absolute incoming weight"),
    ("units_replaced", "Units replaced", "by continual backprop and ReDo, since the start"),
)


class LearnerProbe:
    """The learning service: `host`'s statistics, its learning rate and `lag` (partition ->
    messages behind, a live mapping the Kafka loop updates). Markers: drifts detected, updates
    refused (any reason) and each recovery action the learner takes."""

    role = "learner"

    def __init__(self, host: ModelHost, lag: dict[str, int] | None = None) -> None:
        self.host = host
        self.markers = {"drifts_detected": "drift", "updates_refused": "update_refused"}
        self.markers |= {f"recoveries.{a}": a for a in host.stats().recoveries}
        self.lag = lag if lag is not None else {}
        config = host.config()  # None: a learner without a LearnerConfig
        self.config = config.to_dict() if config is not None else {}
        self._rate = Rate()
        self.samples_per_second = 0.0  # over the last tick
        layers = range(len(host.stats().layers))  # any learner's, not only the MLP's config
        regression = host.task == "regression"
        self.charts = (
            Chart(
                "Prequential MAE" if regression else "Prequential accuracy",
                "target units, recent" if regression else "fraction correct, recent",
                (("prequential_score", "score"),),
            ),
            Chart(
                "Prequential loss",
                "squared error, recent" if regression else "log loss (nats), recent",
                (("prequential_loss", "loss"),),
            ),
            Chart("Learning", "samples / s", (("samples_per_second", "learned"),)),
            *(
                Chart(title, unit, tuple((f"{field}.{i}", f"layer {i}") for i in layers))
                for field, title, unit in LAYER_CHARTS
            ),
            Chart("Gradient norm", "L2, last step, all parameters", (("gradient_norm", "norm"),)),
        )

    def read(self) -> dict[str, float]:
        stats = self.host.stats()
        self.samples_per_second = self._rate.update(stats.samples_learned)
        reading = {
            "samples_learned": stats.samples_learned,
            "samples_per_second": self.samples_per_second,
            "prequential_score": stats.prequential_score,
            "prequential_loss": stats.prequential_loss,
            "gradient_norm": stats.gradient_norm,
            "drifts_detected": stats.drifts_detected,
            "updates_refused": sum(stats.updates_refused.values()),
        }
        for action, count in stats.recoveries.items():
            reading[f"recoveries.{action}"] = count
        for i, layer in enumerate(stats.layers):
            for field, _, _ in LAYER_CHARTS:
                reading[f"{field}.{i}"] = getattr(layer, field)
        return reading

    def now(self) -> dict[str, Any]:
        stats = self.host.stats()
        predictor = self.host.predictor
        return {
            "model": {
                "role": self.role,
                "state": "learning" if self.samples_per_second > 0 else "waiting",
                "task": self.host.task,
                "features": list(predictor.feature_names),
                "classes": list(predictor.classes),
                "version": predictor.version,
                "samples_learned": stats.samples_learned,
                "samples_per_second": self.samples_per_second,
                "kafka_lag": dict(self.lag),
                "config": self.config,
            },
            "stats": dataclasses.asdict(stats),
        }


class ReplicaProbe:
    """A prediction replica: rows predicted per second and mean server time per call, per RPC,
    and the version of the snapshot it serves; `snapshot_source` says where snapshots come from
    (a file's path, or the Kafka topic)."""

    role = "replica"
    charts = (
        Chart("Predictions", "rows / s", tuple((f"rows_per_second.{r}", r) for r in RPCS)),
        Chart(
            "Server time per call",
            "ms, mean over a tick",
            tuple((f"latency_ms.{r}", r) for r in RPCS),
        ),
        Chart("Snapshot version", "samples learned by it", (("version", "version"),)),
    )

    def __init__(self, source: PredictionSource, snapshot_source: Path | str) -> None:
        self.source = source
        self.snapshot_source = snapshot_source
        self.markers: dict[str, str] = {}
        self._rates = {rpc: Rate() for rpc in RPCS}
        self._latency: dict[str, tuple[float, float]] = {}  # rpc -> (seconds, calls) so far

    def read(self) -> dict[str, float | None]:
        totals: dict[tuple[str, str], float] = {}
        for family in self.source.metrics.registry.collect():
            for sample in family.samples:
                if "rpc" in sample.labels:
                    totals[sample.name, sample.labels["rpc"]] = sample.value
        reading: dict[str, float | None] = {"version": self.source.predictor.version}
        for rpc in RPCS:
            rows = totals.get(("lifelong_predictions_total", rpc), 0.0)
            reading[f"rows_per_second.{rpc}"] = self._rates[rpc].update(rows)
            seconds = totals.get(("lifelong_predict_latency_seconds_sum", rpc), 0.0)
            calls = totals.get(("lifelong_predict_latency_seconds_count", rpc), 0.0)
            before_seconds, before_calls = self._latency.get(rpc, (0.0, 0.0))
            self._latency[rpc] = (seconds, calls)
            reading[f"latency_ms.{rpc}"] = (
                1000 * (seconds - before_seconds) / (calls - before_calls)
                if calls > before_calls
                else None
            )
        return reading

    def now(self) -> dict[str, Any]:
        predictor = self.source.predictor
        return {
            "model": {
                "role": self.role,
                "state": "serving" if predictor.version else "waiting",
                "task": self.source.task,
                "features": list(predictor.feature_names),
                "classes": list(predictor.classes),
                "version": predictor.version,
                "snapshot_source": str(self.snapshot_source),
            }
        }
