"""deploy/grafana/dashboards/lifelong.json: well formed, every panel queries something through the
templated data source and says its unit, the layout does not overlap, every expression parses as
PromQL (promtool), and the issue's panels are all there. Whether each query returns data from a
live service: test_deploy_live.py."""

from __future__ import annotations

import json
import shutil

import pytest
from deploy_support import (
    DASHBOARD,
    dashboard_queries,
    load_dashboard,
    missing,
    panels,
    run,
    substitute,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return load_dashboard()


def test_identity_and_variables(dashboard):
    assert dashboard["uid"] == "lifelong" and dashboard["title"] == "Lifelong"
    assert dashboard["id"] is None  # provisioned: Grafana assigns it
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "layer"):
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".+"


def test_every_panel_queries_through_the_templated_datasource(dashboard):
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']}: no query"
        refs = [t["refId"] for t in targets]
        assert len(set(refs)) == len(refs), f"{panel['title']}: duplicate refId"
        for target in targets:
            assert target["expr"].strip(), f"{panel['title']} {target['refId']}: empty query"
            assert target["datasource"] == DATASOURCE, panel["title"]
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            assert annotation["datasource"] == DATASOURCE


def test_every_panel_has_a_unit_a_description_and_thresholds(dashboard):
    for panel in panels(dashboard):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{panel['title']}: no unit"
        assert panel.get("description"), f"{panel['title']}: no description"
        assert defaults["thresholds"]["steps"], f"{panel['title']}: no thresholds"


def test_units_fit_the_quantities(dashboard):
    by_metric = {
        "lifelong_dormant_units_ratio": "percentunit",
        "lifelong_dead_units_ratio": "percentunit",
        "lifelong_prequential_accuracy_ratio": "percentunit",
        "lifelong_effective_rank": "percentunit",  # as a fraction of width
        "lifelong_predict_latency_seconds_bucket": "s",
        "lifelong_learn_latency_seconds_bucket": "s",
        "lifelong_last_checkpoint_timestamp_seconds": "s",  # age
    }
    for panel in panels(dashboard):
        exprs = " ".join(t["expr"] for t in panel["targets"])
        for metric, unit in by_metric.items():
            if metric in exprs:
                assert panel["fieldConfig"]["defaults"]["unit"] == unit, panel["title"]


def test_ids_unique_and_layout_does_not_overlap(dashboard):
    everything = dashboard["panels"]
    ids = [p["id"] for p in everything]
    assert len(set(ids)) == len(ids)
    cells = {}
    for panel in everything:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_issue_panels_are_there(dashboard):
    exprs = [q.expr for q in dashboard_queries(dashboard)]
    joined = "\n".join(exprs)
    wanted = [
        "rate(lifelong_samples_learned_total",  # learning throughput
        "lifelong_kafka_consumer_lag",
        "lifelong_prequential_accuracy_ratio",
        "lifelong_prequential_loss",
        "lifelong_drifts_detected_total",
        "lifelong_dead_units_ratio",
        "lifelong_dormant_units_ratio",
        "lifelong_effective_rank{",
        "/ lifelong_layer_width",  # rank as a fraction of width
        "lifelong_mean_abs_weight",
        "lifelong_gradient_norm",
        "rate(lifelong_units_replaced_total",
        "rate(lifelong_predictions_total",
        "histogram_quantile(0.99, sum by (le, rpc) (rate(lifelong_predict_latency_seconds_bucket",
        "time() - lifelong_last_checkpoint_timestamp_seconds",
    ]
    for fragment in wanted:
        assert fragment in joined, f"no panel queries {fragment!r}"
    drift_annotations = [a for a in dashboard["annotations"]["list"] if a.get("expr")]
    assert any("lifelong_drifts_detected_total" in a["expr"] for a in drift_annotations)
    plasticity = [p for p in panels(dashboard) if "layer" in json.dumps(p["targets"])]
    assert len(plasticity) >= 6  # per-layer panels, filtered by $layer


def test_every_expression_parses_as_promql(dashboard, tmp_path):
    """promtool parses each query (Grafana variables substituted) as a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool is not installed (Debian: apt-get install prometheus)")
    queries = dashboard_queries(dashboard)
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(q.expr)}
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard_rules.json"  # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_dashboard_file_is_canonical_json():
    """Stable diffs: 2-space indentation, as written by json.dump(indent=2)."""
    text = DASHBOARD.read_text()
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
