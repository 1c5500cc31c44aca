"""/metrics of a running service exposes every series of design.md's metrics catalogue."""

import re
import time
import urllib.request
from pathlib import Path

from lifelong.app import App
from lifelong.config import Settings
from lifelong.host import ModelHost
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from testsupport import free_port, small_learner

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"
PER_LAYER = (
    "lifelong_dead_units_ratio",
    "lifelong_dormant_units_ratio",
    "lifelong_tau_dormant_units_ratio",
    "lifelong_effective_rank",
    "lifelong_layer_width",
    "lifelong_mean_abs_weight",
    "lifelong_units_replaced_total",
)


def catalogue() -> list[str]:
    """Metric names of the table in design.md's Metrics section."""
    section = DESIGN.read_text().split("## Metrics", 1)[1]
    return re.findall(r"^\| `(lifelong_\w+)` \|", section, flags=re.MULTILINE)


def exposed(text: str) -> tuple[set[str], dict[str, list]]:
    """Family and sample names, and samples by name."""
    names, samples = set(), {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples.setdefault(sample.name, []).append(sample)
    return names, samples


def test_every_catalogue_metric_is_served(tmp_path):
    port = free_port()
    settings = Settings(
        grpc_address="127.0.0.1:0",
        metrics_port=port,
        demo=True,
        demo_rate=0,  # flat out: a telemetry window completes quickly
        learner={"hidden": [16, 8], "telemetry_window": 100},
        challenger=True,
        remediations={"dead_fraction": {"threshold": 0.9, "windows": 3, "action": "redo"}},
        checkpoint_dir=tmp_path,
        checkpoint_every_samples=100,
    )
    app = App(settings)
    app.start()
    try:
        deadline = time.monotonic() + 60
        registry = app.metrics.registry
        while time.monotonic() < deadline and not (
            app.host.predictor.version >= 300
            and registry.get_sample_value("lifelong_checkpoints_total")  # by the app, when due
        ):
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        app.stop()

    names, samples = exposed(text)
    expected = catalogue()
    assert len(expected) == 39
    # The exposition is classification's: the regression-only MAE is absent, by design; so are
    # the series of a replica following the snapshot topic (tests/integration/
    # test_snapshot_topic.py reads them there), and a challenger's score, there only while one
    # learns (tests/integration/test_challenger_kafka.py).
    replica_only = {"lifelong_model_staleness_seconds", "lifelong_snapshots_refused_total"}
    while_challenging = {"lifelong_challenger_prequential_score"}
    missing = (
        set(expected) - names - {"lifelong_prequential_mae"} - replica_only - while_challenging
    )
    assert not missing, missing
    for name in PER_LAYER:
        assert sorted(s.labels["layer"] for s in samples[name]) == ["0", "1"], name
    refused = {s.labels["reason"]: s.value for s in samples["lifelong_updates_refused_total"]}
    assert refused == {"non_finite_output": 0, "gradient_limit": 0}
    recoveries = {s.labels["action"]: s.value for s in samples["lifelong_recoveries_total"]}
    assert recoveries == {"shrink_step": 0, "restart": 0}
    assert [s.value for s in samples["lifelong_step_scale_ratio"]] == [1]
    widths = {s.labels["layer"]: s.value for s in samples["lifelong_layer_width"]}
    assert widths == {"0": 16, "1": 8}
    learned = {s.labels["source"]: s.value for s in samples["lifelong_samples_learned_total"]}
    assert learned["demo"] >= 300 and learned["grpc"] == learned["kafka"] == 0
    assert samples["lifelong_model_version"][0].value >= 300
    assert samples["lifelong_checkpoints_total"][0].value >= 1
    assert samples["lifelong_last_checkpoint_timestamp_seconds"][0].value > 0
    # What an operator watches of any process (finding 7): prometheus_client's collectors.
    assert samples["process_resident_memory_bytes"][0].value > 0
    assert samples["process_open_fds"][0].value > 0
    assert {"process_cpu_seconds_total", "python_info", "python_gc_objects_collected"} <= names


def test_regression_exports_mae_not_accuracy():
    host = ModelHost(small_learner("regression"))
    names, _ = exposed(generate_latest(host.metrics.registry).decode())
    assert "lifelong_prequential_mae" in names
    assert "lifelong_prequential_accuracy_ratio" not in names
