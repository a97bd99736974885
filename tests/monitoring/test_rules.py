"""The alerting rules (chart/files/monitoring/tripclick-alerts.rules.yaml): promtool's check, promtool's unit
tests in tests/monitoring/rules/ (synthetic series on promtool's own clock), and what the rules read."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart import chartlib
from tests.monitoring.conftest import RULE_TESTS, RULES, promtool
from tests.monitoring.metric_calls import DAG_ID
from tests.monitoring.promql import selectors

DOCS = chartlib.REPO / "docs" / "monitoring.md"


def _alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _rule_tests() -> list[dict]:
    cases = []
    for path in sorted(RULE_TESTS.glob("*.test.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases += test.get("alert_rule_test", [])
    return cases


def test_promtool_accepts_the_rules():
    assert f"SUCCESS: {len(_alerts())} rules found" in promtool("check", "rules", str(RULES))


@pytest.mark.parametrize("path", sorted(RULE_TESTS.glob("*.test.yaml")), ids=lambda p: p.name)
def test_promtool_unit_tests(path):
    promtool("test", "rules", path.name, cwd=path.parent)


@pytest.mark.parametrize("alert", [a["alert"] for a in _alerts()])
def test_every_alert_has_a_firing_and_a_quiet_case(alert):
    cases = [c for c in _rule_tests() if c["alertname"] == alert]
    assert any(c.get("exp_alerts") for c in cases), f"no test where {alert} fires"
    assert any(not c.get("exp_alerts") for c in cases), f"no test where {alert} stays quiet"


def test_test_files_use_the_shipped_rules():
    for path in sorted(RULE_TESTS.glob("*.test.yaml")):
        files = yaml.safe_load(path.read_text())["rule_files"]
        assert [(path.parent / f).resolve() for f in files] == [RULES], path.name


def test_rules_read_only_series_the_mappings_make(produced_series, exporter):
    """Airflow's series as the mappings name them, or the exporter's own (StatsdExporterDown reads its build_info)."""
    own = {name for name, _, _ in exporter.samples() if name.startswith("statsd_exporter_")}
    unknown = {
        f"{alert['alert']}: {selector.name}"
        for alert in _alerts()
        for selector in selectors(alert["expr"])
        if selector.name not in produced_series | own
    }
    assert unknown == set()


def test_pipeline_rules_select_the_dag_by_its_id():
    assert (chartlib.REPO / "dags" / f"{DAG_ID}.py").is_file(), "the DAG file is named after its dag_id"
    for alert in _alerts():
        for selector in selectors(alert["expr"]):
            for op, value in selector.label("dag_id"):
                assert (op, value) == ("=", DAG_ID), f"{alert['alert']}: dag_id{op}{value!r}"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_alert_says_what_to_do(alert):
    annotations = alert["annotations"]
    assert annotations["summary"] and annotations["description"]
    assert alert["labels"]["severity"] in ("critical", "warning")
    anchor = alert["alert"].lower()
    assert annotations["runbook"] == f"docs/monitoring.md#{anchor}"
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in DOCS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/monitoring.md has no section {alert['alert']}"
