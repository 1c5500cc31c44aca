"""deploy/prometheus: the scrape config and alert rules load in promtool, the alerts' unit tests
pass, every alert is documented, every metric they name is in the design's catalogue."""

from __future__ import annotations

import re
import shutil

import pytest
from deploy_support import (
    ALERTS,
    DASHBOARD,
    PROMETHEUS_DIR,
    ROOT,
    alert_rules_from_text,
    metric_names,
    missing,
    run,
)

DESIGN = ROOT / "docs" / "design.md"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
EXPECTED_ALERTS = {
    "LifelongPlasticityLoss",
    "LifelongAccuracyDropAfterDrift",
    "LifelongConsumerLagGrowing",
    "LifelongCheckpointStale",
    "LifelongDown",
    "LifelongLearnerRecovered",
    "LifelongChallengersKeepFailing",
    "LifelongNotLearning",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def test_promtool_check_rules(promtool):
    result = run(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_check_config(promtool):
    """prometheus.yml (compose) is valid and its rule file, resolved like in the container,
    loads."""
    result = run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_test_rules(promtool):
    """alerts_test.yml: each alert fires on a failing series and stays quiet on healthy ones."""
    result = run(promtool, "test", "rules", PROMETHEUS_DIR / "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert():
    tested = set(
        re.findall(r"alertname:\s*(\w+)", (PROMETHEUS_DIR / "alerts_test.yml").read_text())
    )
    assert tested == EXPECTED_ALERTS


def test_a_broken_rule_fails_the_unit_tests(promtool, tmp_path):
    """The unit tests have teeth: raising the plasticity threshold to 0.9 makes them fail."""
    text = ALERTS.read_text().replace(
        "lifelong_dormant_units_ratio > 0.5", "lifelong_dormant_units_ratio > 0.9"
    )
    assert text != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(text)
    shutil.copy(PROMETHEUS_DIR / "alerts_test.yml", tmp_path)
    result = run(promtool, "test", "rules", tmp_path / "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "LifelongPlasticityLoss" in result.stdout + result.stderr


def test_every_alert_has_the_annotations_an_operator_needs():
    text = ALERTS.read_text()
    rules = alert_rules_from_text(text)
    assert set(rules) == EXPECTED_ALERTS
    blocks = re.split(r"^\s*- alert:", text, flags=re.M)[1:]
    for block in blocks:
        name = block.split()[0]
        for key in ("summary:", "description:", "runbook:", "severity:", "for:"):
            assert key in block, f"{name}: no {key}"
        runbook = re.search(r"runbook:\s*docs/deploy\.md#(\S+)", block)
        assert runbook and runbook.group(1) == name.lower(), f"{name}: runbook link"


def test_runbook_anchors_exist_in_deploy_doc():
    if not DEPLOY_DOC.exists():
        pytest.fail("docs/deploy.md is missing")
    headings = re.findall(r"^#+\s+`?(\w+)`?", DEPLOY_DOC.read_text(), re.M)
    anchors = {h.lower() for h in headings}
    assert {a.lower() for a in EXPECTED_ALERTS} <= anchors


def catalogue() -> set[str]:
    """Metric names in docs/design.md's catalogue table."""
    names = set(re.findall(r"^\|\s*`(lifelong_[a-z_]+)`\s*\|", DESIGN.read_text(), re.M))
    assert len(names) > 15, "could not read the metrics catalogue"
    return names


def known(name: str, names: set[str]) -> bool:
    if name in names or name == "up":
        return True
    # a histogram's series
    return any(name == base + suffix for base in names for suffix in ("_bucket", "_sum", "_count"))


@pytest.mark.parametrize("source", [ALERTS, DASHBOARD], ids=lambda p: p.name)
def test_every_metric_named_is_in_the_catalogue(source):
    names = catalogue()
    used = metric_names(source.read_text())
    assert used, "no metric names found"
    unknown = sorted(n for n in used if not known(n, names))
    assert not unknown, f"{source.name} names metrics the service does not export: {unknown}"
