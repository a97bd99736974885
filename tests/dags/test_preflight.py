"""Preflight against real loopback sockets: every unreachable dependency is named in one failure;
configuration problems fail at once, unready services are retried."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_unreachable_services_are_listed_together_and_retried(dag, unreachable):
    from airflow.sdk.exceptions import AirflowFailException

    from tripclick.preflight import PreflightError

    with pytest.raises(PreflightError) as caught:
        _run(dag)
    assert not isinstance(caught.value, AirflowFailException), "a daemon restarting must keep its retries"
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"server0: Docker daemon at tcp://127.0.0.1:{unreachable['server0']} did not answer")
    assert problems[1].startswith(f"server1: Docker daemon at tcp://127.0.0.1:{unreachable['server1']} did not answer")
    assert f"spark: Spark master at 127.0.0.1:{unreachable['spark']} does not accept connections" in problems[2]


def test_a_configuration_problem_fails_at_once_and_still_lists_everything(dag, unreachable, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_SLACK_WEBHOOK")
    with pytest.raises(AirflowFailException) as caught:
        _run(dag)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("server0: Docker daemon at") and problems[1].startswith("server1: Docker daemon at")
    assert "slack: Connection 'slack_webhook' is not defined" in problems[3]
    assert "configuration among them" in str(caught.value)


def test_configuration_problems_are_part_of_preflight(dag, unreachable, monkeypatch):
    from tripclick.config import ConfigError

    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server1"]')
    monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PRODUCER_MODE", "fast")
    with pytest.raises(ConfigError) as caught:
        _run(dag)
    text = str(caught.value)
    assert "server0: Variable 'tripclick_producer_mode' must be one of realtime, batch" in text
    assert "spark: Variable 'tripclick_lake_root' is not set" in text
    assert "server1" not in text


def test_checks_can_be_skipped_one_by_one(dag, unreachable, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server0", "docker:server1", "spark"]')
    assert _run(dag) == ["slack"]


def test_unknown_skip_name_is_an_error(dag, unreachable, monkeypatch):
    from tripclick.config import ConfigError

    monkeypatch.setenv(
        "AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server0", "docker:server1", "spark", "dokcer"]'
    )
    with pytest.raises(ConfigError, match=r"unknown checks \['dokcer'\]"):
        _run(dag)


# Status documents served by a real Spark 4.2.0 standalone master at GET <web UI>/json/.
STATUS_DIR = Path(__file__).parent / "spark_master"


def _status(name: str) -> dict:
    return json.loads((STATUS_DIR / f"{name}.json").read_text())


def test_spark_master_without_a_worker_is_named():
    from tripclick.preflight import spark_capacity_problem

    problem = spark_capacity_problem(_status("no_worker"), "spark.invalid:7077", needed_cores=1)
    assert problem.startswith(
        "spark: Spark master at spark.invalid:7077 has no ALIVE worker (workers: none registered)"
    )


def test_standby_spark_master_is_named():
    from tripclick.preflight import spark_capacity_problem

    status = _status("one_alive_worker")
    status["status"] = "STANDBY"
    assert spark_capacity_problem(status, "spark.invalid:7077", needed_cores=1) == (
        "spark: Spark master at spark.invalid:7077 is STANDBY, not ALIVE: it takes no applications now"
    )


def test_spark_master_with_only_a_dead_worker_is_named():
    from tripclick.preflight import spark_capacity_problem

    problem = spark_capacity_problem(_status("dead_worker"), "spark.invalid:7077", needed_cores=1)
    assert "has no ALIVE worker (workers: DEAD)" in problem


@pytest.mark.parametrize(("used", "needed", "ok"), [(0, 2, True), (1, 1, True), (1, 2, False), (0, 3, False)])
def test_spark_free_cores_must_cover_the_first_job(used, needed, ok):
    from tripclick.preflight import spark_capacity_problem

    status = _status("one_alive_worker")  # one worker with 2 cores
    status["workers"][0]["coresused"] = used
    problem = spark_capacity_problem(status, "spark.invalid:7077", needed_cores=needed)
    if ok:
        assert problem is None
    else:
        assert problem == (
            f"spark: Spark workers at spark.invalid:7077 have {2 - used} free core(s) on 1 ALIVE worker(s), "
            f"streaming_to_silver needs {needed}: wait for the running applications to end, add a worker, "
            "or lower Variable 'tripclick_spark_jobs'.streaming_to_silver.total_executor_cores"
        )


def test_spark_master_whose_status_page_does_not_answer(dag, unreachable, monkeypatch):
    """The master's RPC port answers but its web UI does not: retried, naming the URL and the Variable."""
    import socket

    from tripclick.preflight import PreflightError

    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP", '["docker:server0", "docker:server1"]')
    ui_port = closed_port()
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_MASTER_UI_PORT", str(ui_port))
    with socket.socket() as master:
        master.bind(("127.0.0.1", 0))
        master.listen()
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_CLUSTER", f"spark://127.0.0.1:{master.getsockname()[1]}")
        with pytest.raises(PreflightError) as caught:
            _run(dag)
    (problem,) = caught.value.problems
    assert problem.startswith(f"spark: Spark master status at http://127.0.0.1:{ui_port}/json/ did not answer")
    assert "'tripclick_spark_master_ui_port'" in problem
