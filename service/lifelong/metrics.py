"""Prometheus metrics: every series of design.md's catalogue, in one registry per service.

Counters and histograms are updated by the code that does the work (the host, the servicers, the
Kafka loop) through children resolved once, here. The learner's plasticity statistics are read on
scrape by `PlasticityCollector`, which copies the `stats()` it is given; no maths of its own.

>>> from prometheus_client import generate_latest
>>> metrics = ServiceMetrics()
>>> metrics.rejected("kafka", "non_finite").inc()
>>> b'lifelong_samples_rejected_total{reason="non_finite",source="kafka"} 1.0' in generate_latest(
...     metrics.registry)
True

"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from lifelong.samples import REASONS
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SOURCES = ("kafka", "grpc", "demo")
RPCS = ("predict", "predict_batch", "predict_stream")
ADMIN_ACTIONS = ("checkpoint", "pause", "resume", "roll_back", "reset", "freeze", "unfreeze")

# Predictions take tens of microseconds to a few milliseconds; learning a sample about as long.
PREDICT_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)
LEARN_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)


class PredictionMetrics:
    """The prediction series, registered in their own `registry` (so tests and embedded servers
    can run several side by side): all a prediction replica (`lifelong serve-predictions`)
    exports, with `watch_version`. Hot paths use the pre-resolved children `predictions[rpc]`
    and `predict_latency[rpc]`.

    A new registry also gets prometheus_client's process, platform and GC collectors
    (`process_*`: memory, CPU, open files; `python_info`; `python_gc_*`), as its default
    registry has: what an operator watches of any process.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        predictions = Counter(
            "lifelong_predictions", "Rows predicted.", ["rpc"], registry=self.registry
        )
        predict_latency = Histogram(
            "lifelong_predict_latency_seconds",
            "Server time per prediction call.",
            ["rpc"],
            buckets=PREDICT_BUCKETS,
            registry=self.registry,
        )
        # Children created up front: the hot paths skip `.labels()`, and every series exists
        # (at zero) from the first scrape, so rate() works before the first event.
        self.predictions = {rpc: predictions.labels(rpc) for rpc in RPCS}
        self.predictions_without_known_features = Counter(
            "lifelong_predictions_without_known_features",
            "Rows predicted by name with none of the model's features: answered as an input with "
            "every feature missing, and said so (Prediction.no_known_features).",
            registry=self.registry,
        )
        self.predict_latency = {rpc: predict_latency.labels(rpc) for rpc in RPCS}

    def watch_version(self, version: Callable[[], int]) -> None:
        """Export `version()` (the serving snapshot's) as `lifelong_model_version` on every
        scrape."""
        self.registry.register(VersionCollector(version))


class ServiceMetrics(PredictionMetrics):
    """Every series of the learning service: the prediction series and the learning ones.

    Hot paths use the pre-resolved children: `learned(source)`, `rejected(source, reason)`,
    `predictions[rpc]`, `predict_latency[rpc]`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        samples_learned = Counter(
            "lifelong_samples_learned", "Samples learned.", ["source"], registry=r
        )
        samples_rejected = Counter(
            "lifelong_samples_rejected",
            "Invalid samples (Kafka: sent to the dead-letter topic).",
            ["source", "reason"],
            registry=r,
        )
        self.learn_latency = Histogram(
            "lifelong_learn_latency_seconds",
            "Learning time per sample (observed once per learned batch, its mean).",
            buckets=LEARN_BUCKETS,
            registry=r,
        )
        self.kafka_consumer_lag = Gauge(
            "lifelong_kafka_consumer_lag",
            "Messages behind the log end, per partition.",
            ["partition"],
            registry=r,
        )
        self.partitions_assigned = Gauge(
            "lifelong_kafka_partitions_assigned",
            "Partitions of the sample topic this learner holds.",
            registry=r,
        )
        self.learning_waiting = Gauge(
            "lifelong_learning_waiting",
            "1 while the Kafka learner holds no partition (a rebalance, a dead member's session "
            "not yet expired), else 0.",
            registry=r,
        )
        self.learner_active = Gauge(
            "lifelong_learner_active",
            "1 while this process is the model's active learner (with standbys: elected), else 0.",
            registry=r,
        )
        self.fenced = Counter(
            "lifelong_fenced",
            "Times this learner found itself fenced (another became active) and stepped down.",
            registry=r,
        )
        self.last_checkpoint_timestamp = Gauge(
            "lifelong_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint.",
            registry=r,
        )
        self.consumer_lag: dict[str, int] = {}  # partition -> lag, as exported, for the status page
        self.checkpoints = Counter("lifelong_checkpoints", "Checkpoints written.", registry=r)
        admin_actions = Counter(
            "lifelong_admin_actions",
            "Operators' AdminService calls that changed something, by action.",
            ["action"],
            registry=r,
        )
        self.admin_actions = {a: admin_actions.labels(a) for a in ADMIN_ACTIONS}
        self.learning_paused = Gauge(
            "lifelong_learning_paused", "1 while an operator has paused learning.", registry=r
        )

        self._learned = {s: samples_learned.labels(s) for s in SOURCES}
        self._rejected = {
            (s, reason): samples_rejected.labels(s, reason) for s in SOURCES for reason in REASONS
        }

    def learned(self, source: str) -> Counter:
        """The `lifelong_samples_learned_total` child of `source`."""
        return self._learned[source]

    def rejected(self, source: str, reason: str) -> Counter:
        """The `lifelong_samples_rejected_total` child of (`source`, `reason`)."""
        return self._rejected[source, reason]

    def set_consumer_lag(self, partition: int | str, lag: int) -> None:
        self.kafka_consumer_lag.labels(str(partition)).set(lag)
        self.consumer_lag[str(partition)] = lag

    def watch(self, task: str, stats: Callable, version: Callable[[], int]) -> None:
        """Export the serving `version()` and the learner's `stats()` (a `LearnerStats`) of a
        `task` model on every scrape."""
        self.watch_version(version)
        self.registry.register(PlasticityCollector(task, stats))


class VersionCollector(Collector):
    """The serving snapshot's version, read on scrape."""

    def __init__(self, version: Callable[[], int]) -> None:
        self.version = version

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "lifelong_model_version",
            "Samples learned by the serving snapshot.",
            value=self.version(),
        )


class PlasticityCollector(Collector):
    """The learner's plasticity statistics, read on scrape."""

    def __init__(self, task: str, stats: Callable) -> None:
        self.task = task
        self.stats = stats

    def describe(self) -> list[Metric]:
        return []  # families depend on the task and the architecture; collected lazily

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        if self.task == "classification":
            yield GaugeMetricFamily(
                "lifelong_prequential_accuracy_ratio",
                "Prequential accuracy over a recent window (classification).",
                value=stats.prequential_score,
            )
        else:
            yield GaugeMetricFamily(
                "lifelong_prequential_mae",
                "Prequential mean absolute error over a recent window (regression).",
                value=stats.prequential_score,
            )
        yield GaugeMetricFamily(
            "lifelong_prequential_loss",
            "Prequential log loss (classification) or squared error (regression), recent.",
            value=stats.prequential_loss,
        )
        yield CounterMetricFamily(
            "lifelong_drifts_detected", "Drift detector alarms.", value=stats.drifts_detected
        )
        if stats.gradient_norm is not None:  # a learner that has none exports none
            yield GaugeMetricFamily(
                "lifelong_gradient_norm",
                "L2 norm of the last step's gradient over all parameters.",
                value=stats.gradient_norm,
            )
        refused = CounterMetricFamily(
            "lifelong_updates_refused",
            "Steps refused because they would have made the network non-finite (the sample is "
            "not learned; Kafka: dead-lettered as unlearnable).",
            labels=["reason"],
        )
        for reason, count in stats.updates_refused.items():
            refused.add_metric([reason], count)
        yield refused
        recoveries = CounterMetricFamily(
            "lifelong_recoveries",
            "Recoveries the learner took by itself after repeated refused steps.",
            labels=["action"],
        )
        for action, count in stats.recoveries.items():
            recoveries.add_metric([action], count)
        yield recoveries
        yield GaugeMetricFamily(
            "lifelong_step_scale_ratio",
            "This step size over the configured one: below 1 after a shrink_step recovery.",
            value=stats.step_scale,
        )

        if stats.challenger is not None:  # a learner with a challenger
            yield from _challenger_families(stats.challenger)
        if stats.remediations is not None:  # a learner with remediation rules
            remediations = CounterMetricFamily(
                "lifelong_remediations",
                "Actions the learner took on a sustained plasticity symptom "
                "(lifelong.model.remediation), by action.",
                labels=["action"],
            )
            for action, count in stats.remediations.items():
                remediations.add_metric([action], count)
            yield remediations

        per_layer = {
            "lifelong_dead_units_ratio": (
                GaugeMetricFamily,
                "Hidden units active on none of the last window's inputs.",
                "dead_fraction",
            ),
            "lifelong_dormant_units_ratio": (
                GaugeMetricFamily,
                "Hidden units active on under 1% of the last window's inputs.",
                "dormant_fraction",
            ),
            "lifelong_tau_dormant_units_ratio": (
                GaugeMetricFamily,
                "Tau-dormant hidden units (ReDo): normalised mean activation <= tau.",
                "tau_dormant_fraction",
            ),
            "lifelong_effective_rank": (
                GaugeMetricFamily,
                "Effective rank of the layer's activations over the last window.",
                "effective_rank",
            ),
            "lifelong_layer_width": (GaugeMetricFamily, "Hidden units.", "width"),
            "lifelong_mean_abs_weight": (
                GaugeMetricFamily,
                "Mean absolute incoming weight of the layer.",
                "mean_abs_weight",
            ),
            "lifelong_units_replaced": (
                CounterMetricFamily,
                "Units replaced by continual backprop or reset by ReDo since the start.",
                "units_replaced",
            ),
        }
        for name, (family, documentation, attribute) in per_layer.items():
            metric = family(name, documentation, labels=["layer"])
            for index, layer in enumerate(stats.layers):
                metric.add_metric([str(index)], getattr(layer, attribute))
            yield metric


def _challenger_families(challenger) -> Iterator[Metric]:
    """`lifelong.model.challenger`'s state: whether one learns, its score, swaps and drops."""
    yield GaugeMetricFamily(
        "lifelong_challenger_active",
        "1 while a challenger learns beside the serving model.",
        value=int(challenger.active),
    )
    if challenger.prequential_score is not None:
        yield GaugeMetricFamily(
            "lifelong_challenger_prequential_score",
            "The challenger's prequential score (accuracy, or MAE) over the rows of its challenge.",
            value=challenger.prequential_score,
        )
    for name, documentation, counts in (
        ("lifelong_model_swaps", "Challengers that replaced the serving model.", challenger.swaps),
        ("lifelong_challengers_started", "Challengers started.", challenger.started),
        (
            "lifelong_challengers_dropped",
            "Challengers dropped at their maximum age without replacing the serving model.",
            challenger.dropped,
        ),
    ):
        family = CounterMetricFamily(name, documentation + " By trigger.", labels=["reason"])
        for reason, count in counts.items():
            family.add_metric([reason], count)
        yield family
