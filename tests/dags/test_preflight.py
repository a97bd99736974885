"""Preflight against real loopback sockets: every unreachable dependency is named in one failure."""

from __future__ import annotations

import pytest

from tests.dags.conftest import make_context
from tests.dags.netutil import closed_port


@pytest.fixture
def unreachable(monkeypatch, tls_dir):
    ports = {name: closed_port() for name in ("server0", "server1", "spark")}
    monkeypatch.setenv("AIRFLOW_CONN_DOCKER_SERVER0", f"tcp://127.0.0.1:{ports['server0']}")
    monkeypatch.setenv("AIRFLOW_CONN_DOCKER_SERVER1", f"tcp://127.0.0.1:{ports['server1']}")
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CLUSTER", f"spark://127.0.0.1:{ports['spark']}")
    return ports


def _run(dag):
    from tripclick.preflight import run_preflight

    return run_preflight(**make_context(dag.get_task("preflight")))


def test_lists_every_problem_with_server_and_address(dag, unreachable, monkeypatch):
    from tripclick.preflight import PreflightError

    monkeypatch.delenv("AIRFLOW_CONN_SLACK_WEBHOOK")
    with pytest.raises(PreflightError) as caught:
        _run(dag)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith(f"server0: Docker daemon at tcp://127.0.0.1:{unreachable['server0']} did not answer")
    assert problems[1].startswith(f"server1: Docker daemon at tcp://127.0.0.1:{unreachable['server1']} did not answer")
    assert f"spark: Spark master at 127.0.0.1:{unreachable['spark']} does not accept connections" in problems[2]
    assert "slack: Connection 'slack_webhook' is not defined" in problems[3]


def test_configuration_problems_are_part_of_preflight(dag, unreachable, monkeypatch):
    from tripclick.preflight import PreflightError

    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server1"]')
    monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PRODUCER_MODE", "fast")
    with pytest.raises(PreflightError) as caught:
        _run(dag)
    text = str(caught.value)
    assert "server0: Variable 'tripclick_producer_mode' must be one of realtime, batch" in text
    assert "spark: Variable 'tripclick_lake_root' is not set" in text
    assert "server1" not in text


def test_checks_can_be_skipped_one_by_one(dag, unreachable, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server0", "docker:server1", "spark"]')
    assert _run(dag) == ["slack"]


def test_unknown_skip_name_is_an_error(dag, unreachable, monkeypatch):
    from tripclick.preflight import PreflightError

    monkeypatch.setenv(
        "AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server0", "docker:server1", "spark", "dokcer"]'
    )
    with pytest.raises(PreflightError, match=r"unknown checks \['dokcer'\]"):
        _run(dag)
