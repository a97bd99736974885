"""The exact container specs and spark-submit command lines the DAG produces for a fixed day."""

from __future__ import annotations

import copy

import pytest

from tests.dags.conftest import make_context
from tests.dags.golden import assert_matches_golden

LANDING = {
    "AIRFLOW_VAR_TRIPCLICK_TRANSPORT": "landing",
    "AIRFLOW_VAR_TRIPCLICK_LANDING_DIR": "/var/lib/tripclick/landing",
    "AIRFLOW_VAR_TRIPCLICK_PRODUCER_MODE": "batch",
    "AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV": '{"REPLAY_SPEED": "60"}',
    "AIRFLOW_VAR_TRIPCLICK_SPARK_JOBS": '{"streaming_to_silver": {"extra_args": ["--max-runtime-seconds", 90]}}',
}


def _bound(dag, task_id):
    task = copy.deepcopy(dag.get_task(task_id))
    task._pre_execute_hook(make_context(task))
    return task


def container_spec(task, tls_dir) -> dict:
    """What the Docker daemon is asked to run, as DockerOperator will send it."""
    tls = [task.tls_ca_cert, task.tls_client_cert, task.tls_client_key]
    return {
        "docker_url": task.docker_url,
        "tls_verify": task.tls_verify,
        "tls": [path.replace(str(tls_dir), "<TLS_DIR>") if path else None for path in tls],
        "image": task.image,
        "command": task.command,
        "environment": task.environment,
        "mounts": task.mounts,
        "labels": task.labels,
        "container_name": task.container_name,
        "auto_remove": task.auto_remove,
        "mount_tmp_dir": task.mount_tmp_dir,
    }


def spark_submit_command(task) -> list[str]:
    """The spark-submit command line, built by the provider's own hook."""
    return task._get_hook()._build_spark_submit_command(task.application)


@pytest.mark.parametrize("server", ["server0", "server1"])
def test_producer_container_kafka(dag, tls_dir, server):
    assert_matches_golden(f"producer_{server}.kafka.json", container_spec(_bound(dag, f"producer_{server}"), tls_dir))


def test_producer_container_landing(dag, tls_dir, monkeypatch):
    for key, value in LANDING.items():
        monkeypatch.setenv(key, value)
    assert_matches_golden("producer_server0.landing.json", container_spec(_bound(dag, "producer_server0"), tls_dir))


@pytest.mark.parametrize("job", ["streaming_to_silver", "batch_to_bronze", "etl_to_gold"])
def test_spark_submit_kafka(dag, job, monkeypatch):
    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    assert_matches_golden(f"{job}.kafka.json", spark_submit_command(_bound(dag, job)))


def test_spark_submit_landing(dag, monkeypatch):
    for key, value in LANDING.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    assert_matches_golden("streaming_to_silver.landing.json", spark_submit_command(_bound(dag, "streaming_to_silver")))


def test_driver_host_from_the_pod_environment_wins(dag, monkeypatch):
    monkeypatch.setenv("SPARK_DRIVER_HOST", "192.0.2.7")
    command = spark_submit_command(_bound(dag, "batch_to_bronze"))
    assert "spark.driver.host=192.0.2.7" in command


def test_plain_tcp_only_when_allowed_and_then_warns(dag, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_ALLOW_PLAIN_TCP", "true")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR", "/nonexistent")
    task = _bound(dag, "producer_server1")
    assert task.tls_ca_cert is None and task.tls_client_cert is None
    assert task.docker_url == "tcp://server1.tripclick.invalid:2376"
    assert "PLAIN TCP" in caplog.text
