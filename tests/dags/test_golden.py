"""The exact container specs and spark-submit command lines the DAG produces for a fixed day."""

from __future__ import annotations

import copy

import pytest

from tests.dags.conftest import make_context
from tests.dags.docker_api import RecordingDockerDaemon
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


def container_request(dag, task_id, tmp_path, monkeypatch) -> dict:
    """What the Docker provider sends to the daemon to create the producer container, over mutual TLS."""
    from docker.errors import APIError

    server = task_id.removeprefix("producer_")
    # requests would otherwise trust this machine's CA bundle instead of the daemon's CA (as in production).
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with RecordingDockerDaemon(tmp_path / "docker") as daemon:
        monkeypatch.setenv(f"AIRFLOW_CONN_DOCKER_{server.upper()}", daemon.url)
        monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR", str(daemon.client_dir))
        task = _bound(dag, task_id)
        with pytest.raises(APIError, match="recorded by the golden test"):
            task.execute(make_context(task))
    (create,) = daemon.created
    # Only the parts that vary from run to run are replaced: the API version prefix stays, so a
    # docker-py upgrade that changes it shows up in the diff.
    return {
        "daemon": task.docker_url.replace(daemon.url, "tcp://<daemon>"),
        "calls": [f"{r['method']} {r['path']}" for r in daemon.requests],
        "client_certificate_cn": create["client_certificate_cn"],
        "query": create["query"],
        "body": create["body"],
    }


def spark_submit_command(task) -> list[str]:
    """The spark-submit command line, built by the provider's own hook."""
    return task._get_hook()._build_spark_submit_command(task.application)


@pytest.mark.parametrize("server", ["server0", "server1"])
def test_producer_container_kafka(dag, server, tmp_path, monkeypatch):
    request = container_request(dag, f"producer_{server}", tmp_path, monkeypatch)
    assert_matches_golden(f"producer_{server}.kafka.json", request)


def test_producer_container_landing(dag, tmp_path, monkeypatch):
    for key, value in LANDING.items():
        monkeypatch.setenv(key, value)
    request = container_request(dag, "producer_server0", tmp_path, monkeypatch)
    assert_matches_golden("producer_server0.landing.json", request)


@pytest.mark.parametrize("job", ["streaming_to_silver", "batch_to_bronze", "etl_to_gold"])
def test_spark_submit_kafka(dag, job, monkeypatch):
    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    assert_matches_golden(f"{job}.kafka.json", spark_submit_command(_bound(dag, job)))


def test_spark_submit_discard_partial_day_kafka(dag, monkeypatch):
    """A day whose batch_to_bronze failed: silver (with its checkpoint) and bronze are discarded."""
    from tests.dags.test_discard import _bind

    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    states = {"producer_server0": "success", "producer_server1": "success", "streaming_to_silver": "success"}
    task = _bind(dag, {**states, "batch_to_bronze": "failed"})
    assert_matches_golden("discard_partial_day.kafka.json", spark_submit_command(task))


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


def test_rebuilding_a_golden_file_is_reported_as_a_failure(tmp_path, monkeypatch):
    from tests.dags import golden

    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    monkeypatch.setenv("REBUILD_FIXTURES", "1")
    with pytest.raises(pytest.fail.Exception, match="example.json rewritten; review"):
        golden.assert_matches_golden("example.json", {"a": 1})
    assert (tmp_path / "example.json").read_text() == '{\n  "a": 1\n}\n'
    monkeypatch.delenv("REBUILD_FIXTURES")
    golden.assert_matches_golden("example.json", {"a": 1})
    with pytest.raises(AssertionError, match="example.json differs from its golden file"):
        golden.assert_matches_golden("example.json", {"a": 2})


def test_the_ui_records_what_a_producer_really_ran(dag, tls_dir):
    """The fields Airflow sends to the UI when the task ends (its own serializer), after binding."""
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields

    task = _bound(dag, "producer_server1")
    assert task.overwrite_rtif_after_execution is True
    shown = _serialize_rendered_fields(task)
    assert shown["image"] == "tripclick-producer:1.0.0"
    assert shown["command"][:2] == ["--file", "/app/data/date=2020-10-01/events.json"]
    assert shown["environment"] == {"KAFKA_BROKERS": "kafka-0.tripclick.invalid:9092,kafka-1.tripclick.invalid:9092"}
    assert shown["docker_url"] == "tcp://server1.tripclick.invalid:2376"
    assert shown["container_name"] == "tripclick-producer-server1-2020-10-01-try1"


def test_the_ui_records_what_a_spark_job_really_ran(dag):
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields

    shown = _serialize_rendered_fields(_bound(dag, "etl_to_gold"))
    assert shown["application"] == "/opt/airflow/dags/repo/workloads/spark/etl_to_gold.py"
    assert shown["application_args"][:2] == ["--date", "2020-10-01"]
    assert shown["conf"]["spark.cores.max"] == "2"
    assert shown["name"] == "tripclick-etl_to_gold-2020-10-01"


def test_a_succeeded_producer_removes_its_container_a_failed_one_keeps_it(dag, tmp_path, monkeypatch):
    """The provider's auto_remove would remove failed containers too; the DAG removes only on success."""
    from tripclick.producers import finish_producer

    task = dag.get_task("producer_server0")
    assert task.auto_remove == "never"
    assert task._post_execute_hook is finish_producer
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with RecordingDockerDaemon(tmp_path / "docker") as daemon:
        monkeypatch.setenv("AIRFLOW_CONN_DOCKER_SERVER0", daemon.url)
        monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR", str(daemon.client_dir))
        bound = _bound(dag, "producer_server0")
        bound.container = {"Id": "c0ffee"}
        context = make_context(bound)
        context["ti"].start_date = None
        context["ti"].xcom_push = lambda key, value: None
        finish_producer(context)
    assert [f"{r['method']} {r['path']}" for r in daemon.requests][-1] == "DELETE /v1.41/containers/c0ffee"
