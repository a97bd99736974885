"""Bad configuration fails early, naming the item and how to set it, all problems at once."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from tests.dags.conftest import make_context


def _bind(dag, task_id):
    task = copy.deepcopy(dag.get_task(task_id))
    task._pre_execute_hook(make_context(task))
    return task


def _problems(dag, task_id) -> str:
    from tripclick.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        _bind(dag, task_id)
    return str(caught.value)


def test_missing_docker_connection(dag, tls_dir, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DOCKER_SERVER0")
    message = _problems(dag, "producer_server0")
    assert "Connection 'docker_server0' is not defined" in message
    assert "airflow connections add docker_server0 --conn-uri 'tcp://<server0 host>:2376'" in message
    assert "AIRFLOW_CONN_DOCKER_SERVER0" in message


def test_docker_connection_without_port(dag, tls_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DOCKER_SERVER1", "tcp://server1.tripclick.invalid")
    assert "Connection 'docker_server1' must name host and port" in _problems(dag, "producer_server1")


def test_missing_spark_connection(dag, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_CLUSTER")
    assert "Connection 'spark_cluster' is not defined" in _problems(dag, "etl_to_gold")


def test_absent_tls_files_are_named(dag, tls_dir, monkeypatch):
    (tls_dir / "key.pem").unlink()
    (tls_dir / "ca.pem").unlink()
    message = _problems(dag, "producer_server0")
    assert f"Docker TLS file(s) ca.pem, key.pem missing or unreadable in {tls_dir}" in message
    assert "'tripclick-docker-tls' Secret" in message


def test_malformed_json_variable(dag, tls_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV", "{REPLAY_SPEED: 60")
    message = _problems(dag, "producer_server0")
    assert "Variable 'tripclick_producer_extra_env' is not valid JSON" in message
    assert "AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV" in message


def test_wrong_type_and_bad_choice_reported_together(dag, tls_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PRODUCER_MODE", "fast")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_ALLOW_PLAIN_TCP", "maybe")
    message = _problems(dag, "producer_server1")
    assert "Variable 'tripclick_producer_mode' must be one of realtime, batch, got 'fast'" in message
    assert "Variable 'tripclick_docker_allow_plain_tcp' must be true or false, got 'maybe'" in message


def test_non_integer_port(dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_PORT", "forty-one thousand")
    assert "Variable 'tripclick_spark_driver_port' must be an integer" in _problems(dag, "batch_to_bronze")


def test_kafka_transport_needs_brokers(dag, tls_dir, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_KAFKA_BROKERS")
    message = _problems(dag, "producer_server0")
    assert "Variable 'tripclick_kafka_brokers' is required when tripclick_transport is 'kafka'" in message


def test_landing_transport_needs_a_folder(dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_TRANSPORT", "landing")
    message = _problems(dag, "streaming_to_silver")
    assert "Variable 'tripclick_landing_dir' is required when tripclick_transport is 'landing'" in message


def test_required_lake_root(dag, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT")
    assert "Variable 'tripclick_lake_root' is not set" in _problems(dag, "batch_to_bronze")


def test_spark_driver_host_unknown(dag, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_HOST")
    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    assert "Spark driver host unknown: set env SPARK_DRIVER_HOST" in _problems(dag, "etl_to_gold")


def test_spark_job_override_typo(dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_JOBS", '{"etl_to_gold": {"executor_memroy": "2g"}}')
    assert "'tripclick_spark_jobs'.etl_to_gold: unknown key 'executor_memroy'" in _problems(dag, "etl_to_gold")


def test_extra_env_values_must_be_strings(dag, tls_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV", '{"REPLAY_SPEED": 60}')
    assert "value for 'REPLAY_SPEED' must be a string, got 60" in _problems(dag, "producer_server0")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('{"producer": {"retries": "three"}}', "tripclick_task_policy.producer.retries must be a non-negative integer"),
        ('{"producers": {"retries": 3}}', "tripclick_task_policy: unknown stage 'producers'"),
        ('{"producer": {"timeout": 60}}', "tripclick_task_policy.producer: unknown key 'timeout'"),
        ("[1, 2]", "Variable 'tripclick_task_policy' must be a JSON object, got list"),
        ("{oops", "Variable 'tripclick_task_policy' is not valid JSON"),
    ],
)
def test_bad_task_policy_fails_the_parse_with_its_message(monkeypatch, policy, expected):
    from tripclick.config import ConfigError
    from tripclick.policy import load_policy

    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_TASK_POLICY", policy)
    with pytest.raises(ConfigError) as caught:
        load_policy()
    assert expected in str(caught.value)


def test_task_policy_override_reaches_the_operators(monkeypatch):
    """The DAG parsed again with an override: the operators carry it, other stages keep their defaults."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from tests.conftest import DAGS

    override = '{"producer": {"retries": 4, "timeout_s": 7200}, "offsets": {"etl_to_gold_s": 14400}}'
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_TASK_POLICY", override)
    dag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS).dags["tripclick_daily_pipeline"]
    for task_id in ("producer_server0", "producer_server1"):
        task = dag.get_task(task_id)
        assert (task.retries, task.execution_timeout) == (4, timedelta(hours=2)), task_id
    assert dag.get_task("etl_to_gold").retries == 2
    assert "seconds=14400" in dag.get_task("wait_for_etl_to_gold_window").target_time


def test_every_configuration_error_fails_without_retries():
    """A retry cannot fix configuration: the task runner fails an AirflowFailException at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from tripclick.config import ConfigError

    assert issubclass(ConfigError, AirflowFailException)


def test_spark_conf_values_must_be_strings_or_numbers(dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_CONF", '{"spark.sql.shuffle.partitions": 8, "spark.jars": ["a"]}')
    message = _problems(dag, "batch_to_bronze")
    assert "Variable 'tripclick_spark_conf': values must be strings or numbers, got {'spark.jars': ['a']}" in message
