"""The Grafana dashboard (chart/files/monitoring/tripclick-dashboard.json, built by scripts/monitoring_dashboard.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.chart import chartlib
from tests.monitoring.conftest import DASHBOARD, KUBELET_SERIES, promtool
from tests.monitoring.metric_calls import DAG_ID
from tests.monitoring.promql import selectors

# The dashboard's own variables, as Grafana would substitute them with their defaults.
VARIABLES = {"$namespace": "airflow", "$release": chartlib.RELEASE}


def _generator():
    spec = importlib.util.spec_from_file_location(
        "monitoring_dashboard", chartlib.REPO / "scripts/monitoring_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def _queries(board: dict) -> list[tuple[str, str]]:
    """(panel title, expression with the variables substituted) for every query of the dashboard."""
    found = []
    for panel in _panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {target['expr']!r}"
            found.append((panel["title"], expr))
    return found


def test_committed_json_is_the_generators_output():
    generator = _generator()
    assert DASHBOARD.read_text() == generator.render(), "run: python scripts/monitoring_dashboard.py --write"


def test_the_generator_refuses_unknown_options(capsys):
    with pytest.raises(SystemExit) as exited:
        _generator().main(["--writ"])  # no abbreviation of --write
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_dashboard_loads_as_a_grafana_model(board):
    loaded = Dashboard.from_json(board)
    assert loaded.uid == "tripclick-daily-pipeline"
    assert len(loaded.panels) == len(board["panels"])


def test_every_query_parses_as_promql(board, tmp_path):
    """promtool (Prometheus' own parser) checks each query as a recording rule."""
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(_queries(board))]
    path = tmp_path / "dashboard-queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(path))


def test_queries_read_only_statsd_and_kubelet_series(board, produced_series):
    """Every Airflow series is one the mappings make of what Airflow sends; the rest are the kubelet's."""
    unknown = set()
    for title, expr in _queries(board):
        for selector in selectors(expr):
            if selector.name not in produced_series | KUBELET_SERIES:
                unknown.add(f"{title}: {selector.name}")
            for op, value in selector.label("dag_id"):
                assert (op, value) == ("=", DAG_ID), f"{title}: dag_id{op}{value!r}"
    assert unknown == set()


def test_kubelet_series_are_said_to_come_from_the_kubelet(board):
    assert "kubelet" in board["description"] and "not from statsd" in board["description"]
    for panel in _panels(board):
        names = {s.name for t in panel["targets"] for s in selectors(t["expr"])}
        if names & KUBELET_SERIES:
            assert "kubelet" in panel["description"] and "not from statsd" in panel["description"], panel["title"]
            assert names <= KUBELET_SERIES, f"{panel['title']} mixes kubelet and statsd series"


def test_the_screen_has_what_the_team_looks_at(board):
    by_series = {}
    for title, expr in _queries(board):
        for selector in selectors(expr):
            by_series.setdefault(selector.name, set()).add(title)
    for series in (
        "airflow_task_finish_total",  # today's run per stage: state
        "airflow_dag_task_duration_sum",  # ... its duration
        "airflow_dag_task_duration_bucket",  # ... against its 7-day median
        "airflow_dagrun_schedule_delay_sum",
        "airflow_scheduler_heartbeat",
        "airflow_dag_processing_import_errors",
        "airflow_ti_failures",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ):
        assert series in by_series, f"no panel reads {series}"


def test_layout_has_unique_ids_and_no_overlap(board):
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = {}
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    for panel in _panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), f"{panel['title']} says nothing about what it shows"


def test_stage_table_gives_last_try_against_the_7_day_median(board, tmp_path):
    """The table's queries on synthetic series: three tries of 1 h, then one of 4 h that ended at 6900 min."""
    table = next(p for p in _panels(board) if p["title"] == "Stages in the last 24 hours")
    exprs = {t["refId"]: t["expr"] for t in table["targets"]}
    labels = f'dag_id="{DAG_ID}", task_id="streaming_to_silver"'
    buckets = {"1800": [0] * 5, "3600": [0, 1, 2, 3, 3], "5400": [0, 1, 2, 3, 3], "14400": [0, 1, 2, 3, 4]}
    buckets["+Inf"] = buckets["14400"]
    changes = [0, 2400, 3840, 5280, 6900]  # minutes at which each try ended

    def values(steps: list[float]) -> str:
        parts = []
        for i, value in enumerate(steps):
            end = changes[i + 1] if i + 1 < len(changes) else 7000 + 5
            parts.append(f"{value}x{(end - changes[i]) // 5 - 1}")
        return " ".join(parts)

    series = [
        {"series": f"airflow_dag_task_duration_count{{{labels}}}", "values": values([0, 1, 2, 3, 4])},
        {"series": f"airflow_dag_task_duration_sum{{{labels}}}", "values": values([0, 3600, 7200, 10800, 25200])},
        {"series": f'airflow_task_finish_total{{{labels}, state="success"}}', "values": values([0, 1, 2, 3, 4])},
    ]
    series += [
        {"series": f'airflow_dag_task_duration_bucket{{{labels}, le="{le}"}}', "values": values(counts)}
        for le, counts in buckets.items()
    ]
    # The median of 1 h, 1 h, 1 h, 4 h read from the buckets: rank 2 of 4 in (1800, 3600], interpolated.
    median = 1800 + 1800 * 2 / 3
    expected = {"A": 1, "B": None, "D": 14400, "E": median, "F": 14400 / median}
    tests = [
        {
            "expr": exprs[ref],
            "eval_time": "6910m",
            "exp_samples": [] if value is None else [{"labels": '{task_id="streaming_to_silver"}', "value": value}],
        }
        for ref, value in expected.items()
    ]
    path = tmp_path / "table.test.yaml"
    path.write_text(yaml.safe_dump({"tests": [{"interval": "5m", "input_series": series, "promql_expr_test": tests}]}))
    promtool("test", "rules", str(path))
