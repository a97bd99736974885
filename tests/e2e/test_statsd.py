"""Airflow really sends what monitoring relies on: during a failed and a successful demo run, the stack's
StatsD capture receives every metric that the alert rules and the dashboard read through the statsd
exporter's mappings (chart/files/monitoring/*, airflow.statsd.overrideMappings), except the few a short
demo run cannot emit, each named below with the reason. Each run's lines go through a real statsd_exporter
of their own, so one run's series cannot stand in for another's."""

from __future__ import annotations

import json

import yaml

from tests.chart import chartlib
from tests.e2e import helpers
from tests.monitoring.conftest import DASHBOARD, KUBELET_SERIES, PRODUCTION, RULES, mapping_document
from tests.monitoring.exporter_process import ExporterProcess
from tests.monitoring.promql import selectors
from tests.monitoring.test_dashboard import _queries

# Series that monitoring reads but these runs cannot produce, and why (names as the mappings make them).
EXEMPT = {
    # Airflow sends dagrun.schedule_delay only for scheduled runs; every demo run is triggered by hand.
    "airflow_dagrun_schedule_delay_count": "sent for scheduled runs only; the demo triggers its runs",
    "airflow_dagrun_schedule_delay_sum": "sent for scheduled runs only; the demo triggers its runs",
    # The scheduler samples how many task instances are in each state every 30 s
    # ([metrics] / scheduler ti metrics interval); a task queued or deferred for a second or two between two
    # samples is never counted, so whether a short demo run shows it is chance.
    "airflow_ti_queued": "a 30 s sample of a state demo tasks hold for a second or two",
    "airflow_ti_deferred": "a 30 s sample; the demo's waits are in the past, so they defer for an instant",
}


# What the dag-processor sends from its own loop, whatever runs: not tied to any run's bounds.
PARSE_LOOP_PREFIX = "airflow.dag_processing."


def needed_series() -> dict[str, set[str]]:
    """Series name -> the alerts and panels that read it."""
    needed: dict[str, set[str]] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                for selector in selectors(rule["expr"]):
                    needed.setdefault(selector.name, set()).add(f"alert {rule['alert']}")
    for title, expr in _queries(json.loads(DASHBOARD.read_text())):
        for selector in selectors(expr):
            if selector.name not in KUBELET_SERIES:
                needed.setdefault(selector.name, set()).add(f"panel {title}")
    return needed


def test_the_exemptions_are_series_monitoring_reads():
    assert set(EXEMPT) <= set(needed_series())


def test_runs_send_every_metric_the_alerts_and_dashboard_read(daemon_down_day, good_day, tmp_path):
    # A failed run (a Docker daemon down fails preflight) and a good one, shared with the tests that read them:
    # what the capture received while each of the two went on.
    good, _ = good_day
    failed = daemon_down_day
    assert (failed.state, good.state) == ("failed", "success")
    lines = failed.statsd_lines() + good.statsd_lines()
    # The dag-processor reports its parse loop (import errors, file counts) every time it parses an unchanged
    # file, every 2 min here: a 65 s run may see none of those reports, so they are read from all the capture holds.
    parse_loop = [line for line in helpers.statsd_lines() if line.startswith(PARSE_LOOP_PREFIX)]
    lines += "".join(f"{line}\n" for line in parse_loop)
    with ExporterProcess(
        mapping_document(chartlib.overlay_values(PRODUCTION)["airflow"]["statsd"]), tmp_path
    ) as exporter:
        exporter.feed(lines.splitlines())
        series = exporter.series()
        # StatsdExporterDown reads the exporter's own build_info, there whatever Airflow sends.
        own = {name for name, _, _ in exporter.samples() if name.startswith("statsd_exporter_")}
    produced = {name for name, _ in series} | own
    missing = {
        name: sorted(users) for name, users in needed_series().items() if name not in produced and name not in EXEMPT
    }
    assert missing == {}, f"never sent during the runs (captured {len(lines.splitlines())} lines)"
    # And the series the alerts read are about the pipeline's own DAG.
    dags = {dict(labels).get("dag_id") for name, labels in series if name == "airflow_task_finish_total"}
    assert helpers.DAG_ID in dags
