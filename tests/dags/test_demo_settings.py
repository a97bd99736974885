"""The demo's table (values/demo.yaml, through demo/stack/settings.py): the names production and the DAG use,
values the DAG accepts, folders the stack makes, and the exact environment it gives Airflow, written out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from demo.stack import config as stack_config
from demo.stack import settings
from demo.stack.proc import StackError
from tripclick import config, policy, spark_jobs

REPO = Path(__file__).resolve().parents[2]

# Variables only one side sets, and why. Every other Variable production sets, the demo sets too.
PRODUCTION_ONLY = {
    "tripclick_kafka_brokers": "no Kafka broker runs on the local stack (tripclick_transport: landing)",
    "tripclick_kafka_topic": "no Kafka broker runs on the local stack (tripclick_transport: landing)",
}
DEMO_ONLY = {
    "tripclick_landing_dir": "the landing transport's folder, which production (Kafka) has no use for",
    "tripclick_producer_image": "the image the stack builds, named outright (production: the DAG's default)",
    "tripclick_producer_tag": "the image the stack builds, named outright (production: the DAG's default)",
    "tripclick_producer_extra_env": "the fast replay (production replays at 1x)",
    "tripclick_spark_apps_dir": "this checkout's workloads/spark (production: the DAG's default, git-sync's checkout)",
    "tripclick_spark_jobs": "a 12 s stream and small executors on one small worker",
    "tripclick_spark_conf": "no Spark UI, two shuffle partitions, JVM flags for seconds-long applications on two cores",
    "tripclick_spark_packages": "no Maven repository is reachable, and landing and a local lake need no connector",
    "tripclick_spark_master_ui_port": "the stack's port (production: the DAG's default 8080)",
    "tripclick_spark_driver_host": "loopback (production: the node's IP, from the Spark pod override)",
    "tripclick_task_policy": "second-long retry delays and a gold deadline the alert tests can reach",
    "tripclick_alert_email_to": "the stack's SMTP server takes the alert emails (production: each site sets its own)",
}


def production_variables() -> dict:
    """tripclick.variables as production's overlays set them (a flat mapping: the later file wins a name)."""
    merged = {}
    for name in ("base.yaml", "k3s-ec2.yaml"):
        merged |= yaml.safe_load((REPO / "values" / name).read_text())["tripclick"].get("variables") or {}
    return merged


def test_the_demo_sets_the_variables_production_sets_and_lists_every_difference():
    demo, production = set(settings.variables()), set(production_variables())
    assert sorted(production - demo) == sorted(PRODUCTION_ONLY)
    assert sorted(demo - production) == sorted(DEMO_ONLY)
    assert not set(PRODUCTION_ONLY) & set(DEMO_ONLY)


def test_the_demo_names_every_connection_of_the_dag_and_no_other():
    assert sorted(settings.connections()) == sorted(spec.conn_id for spec in config.CONNECTIONS)


def test_every_demo_value_is_one_the_dag_accepts():
    """Each Variable as a task reads it from the environment, parsed by the DAG (a bad one raises, naming it)."""
    env = settings.env()
    values = {spec.name: spec.default for spec in config.VARIABLES}
    for name in settings.variables():
        values[name] = config.VARIABLES_BY_NAME[name].parse(env[f"AIRFLOW_VAR_{name.upper()}"])
    merged = policy.merge_policy(values[policy.POLICY_VARIABLE])
    assert merged["producer"].retries >= 1, "a producer fault must be retried on the stack, as in production"
    problems: list[str] = []
    for job in config.SPARK_JOBS:
        spark_jobs.spark_job(job, "2020-10-01", values, problems, in_driver=False)
    assert problems == []


def test_the_spark_applications_are_where_the_demo_points():
    folder = Path(settings.variables()["tripclick_spark_apps_dir"])
    missing = [
        job["application"] for job in spark_jobs.DEFAULT_JOBS.values() if not (folder / job["application"]).is_file()
    ]
    assert missing == [], f"{folder} lacks {missing}"


def test_the_variables_point_at_the_folders_the_stack_makes():
    v = settings.variables()
    assert Path(v["tripclick_landing_dir"]) == stack_config.landing_dir()
    assert Path(v["tripclick_lake_root"]) == stack_config.lake_root()
    for server in stack_config.DOCKER_SERVERS:
        assert Path(v[f"tripclick_data_dir_{server}"]) == stack_config.server_data_dir(server)
    assert Path(v["tripclick_docker_tls_dir"]) == stack_config.client_tls_dir()


def test_an_unknown_placeholder_is_refused_naming_it_and_where(tmp_path, monkeypatch):
    bad = tmp_path / "demo.yaml"
    bad.write_text(
        'tripclick:\n  variables:\n    tripclick_landing_dir: "{state}/landing"\n'
        '    tripclick_lake_root: "{stat}/lake"\n'
    )
    monkeypatch.setattr(settings, "VALUES", bad)
    settings._filled.cache_clear()
    try:
        with pytest.raises(StackError) as err:
            settings.table()
    finally:
        settings._filled.cache_clear()
    message = str(err.value)
    assert "unknown placeholder {stat}" in message and "tripclick.variables.tripclick_lake_root" in message
    assert "{state}" in message and "{port.server0}" in message, "the message lists the known placeholders"
    with pytest.raises(StackError, match=r"unknown placeholder \{port\.nope\}"):
        settings.fill(["tcp://{host}:{port.nope}"], settings.placeholders())


def test_a_lone_placeholder_keeps_its_type_and_text_around_one_is_written_out():
    known = {"host": "127.0.0.1", "port.smtp": 28025}
    assert settings.fill({"port": "{port.smtp}", "url": "smtp://{host}:{port.smtp}/"}, known) == {
        "port": 28025,
        "url": "smtp://127.0.0.1:28025/",
    }


def expected_env(state: Path) -> dict[str, str]:
    """What the stack gives Airflow at TRIPCLICK_DEMO_PORT_OFFSET=3000 with its state in `state`, written out by
    hand: a change to values/demo.yaml shows here."""
    return {
        "AIRFLOW_VAR_TRIPCLICK_TRANSPORT": "landing",
        "AIRFLOW_VAR_TRIPCLICK_LANDING_DIR": f"{state}/landing",
        "AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT": f"{state}/lake",
        "AIRFLOW_VAR_TRIPCLICK_DATA_DIR_SERVER0": f"{state}/servers/server0/data",
        "AIRFLOW_VAR_TRIPCLICK_DATA_DIR_SERVER1": f"{state}/servers/server1/data",
        "AIRFLOW_VAR_TRIPCLICK_PRODUCER_IMAGE": "tripclick-producer",
        "AIRFLOW_VAR_TRIPCLICK_PRODUCER_TAG": "1.0.0",
        "AIRFLOW_VAR_TRIPCLICK_PRODUCER_MODE": "realtime",
        "AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV": '{"TRIPCLICK_REPLAY_SPEED": "8000"}',
        "AIRFLOW_VAR_TRIPCLICK_SPARK_APPS_DIR": f"{REPO}/workloads/spark",
        "AIRFLOW_VAR_TRIPCLICK_SPARK_JOBS": (
            '{"streaming_to_silver": {"extra_args": ["--max-runtime-seconds", "12", "--watermark-delay", "1 day"], '
            '"executor_memory": "512m", "driver_memory": "512m", "total_executor_cores": 1}, '
            '"batch_to_bronze": {"executor_memory": "512m", "driver_memory": "512m", "total_executor_cores": 2}, '
            '"etl_to_gold": {"extra_args": ["--pg-dsn", "host=127.0.0.1 port=57329 dbname=tripclick_gold '
            'user=tripclick"], "executor_memory": "512m", "driver_memory": "512m", "total_executor_cores": 2}}'
        ),
        "AIRFLOW_VAR_TRIPCLICK_SPARK_CONF": (
            '{"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", '
            '"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", '
            '"spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}'
        ),
        "AIRFLOW_VAR_TRIPCLICK_SPARK_PACKAGES": "{}",
        "AIRFLOW_VAR_TRIPCLICK_SPARK_MASTER_UI_PORT": "31180",
        "AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_HOST": "127.0.0.1",
        "AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_PORT": "44000",
        "AIRFLOW_VAR_TRIPCLICK_SPARK_BLOCKMANAGER_PORT": "44001",
        "AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR": f"{state}/tls/client",
        "AIRFLOW_VAR_TRIPCLICK_TASK_POLICY": (
            '{"preflight": {"retries": 1, "retry_delay_s": 2, "max_retry_delay_s": 5}, '
            '"producer": {"retries": 1, "retry_delay_s": 3, "max_retry_delay_s": 10}, '
            '"streaming_to_silver": {"retries": 0}, '
            '"batch_to_bronze": {"retries": 1, "retry_delay_s": 5, "max_retry_delay_s": 10}, '
            '"etl_to_gold": {"retries": 1, "retry_delay_s": 5, "max_retry_delay_s": 10}, '
            '"offsets": {"gold_deadline_s": 12000}}'
        ),
        "AIRFLOW_VAR_TRIPCLICK_ALERT_EMAIL_TO": "oncall@tripclick.test",
        "AIRFLOW_CONN_DOCKER_SERVER0": "tcp://127.0.0.1:26760",
        "AIRFLOW_CONN_DOCKER_SERVER1": "tcp://127.0.0.1:26761",
        "AIRFLOW_CONN_SPARK_CLUSTER": "spark://127.0.0.1:30077",
        "AIRFLOW_CONN_SLACK_WEBHOOK": (
            '{"conn_type": "slackwebhook", "password": "http://127.0.0.1:31090/services/T000/B000/XXXX"}'
        ),
        "AIRFLOW_CONN_SMTP_ALERTS": (
            '{"conn_type": "smtp", "host": "127.0.0.1", "port": 31025, "extra": {"from_email": '
            '"airflow@tripclick.test", "disable_ssl": true, "disable_tls": true, "timeout": 10, "retry_limit": 1}}'
        ),
        "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "6",
    }


def test_the_table_gives_airflow_exactly_this_environment(tmp_path):
    """Ports shifted and the state folder moved, in a fresh interpreter (both are read when the stack's config
    is imported); the Docker daemons listen where their Connections point."""
    state = (tmp_path / "state").resolve()
    code = (
        "import json\n"
        "from demo.stack import settings\n"
        "from demo.stack.services import DockerDaemon\n"
        "print(json.dumps({'env': settings.env(), 'docker': [DockerDaemon(s).url for s in ('server0', 'server1')],"
        " 'producer': settings.producer_ref()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "TRIPCLICK_DEMO_PORT_OFFSET": "3000", "TRIPCLICK_DEMO_STATE": str(state)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rendered = json.loads(out)
    assert rendered["env"] == expected_env(state)
    assert rendered["docker"] == ["tcp://127.0.0.1:26760", "tcp://127.0.0.1:26761"]
    assert rendered["producer"] == "tripclick-producer:1.0.0"
