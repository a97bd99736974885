"""The connectors spark-submit fetches (`--packages`): which job gets which, in versions the pinned pyspark runs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.dags.conftest import make_context
from tripclick import config

KAFKA = config.SPARK_PACKAGES["kafka"]
S3A = config.SPARK_PACKAGES["s3a"]


def _jar_versions() -> dict[str, str]:
    """artifact -> version, from the jar file names of the installed pyspark (what spark-submit runs)."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    found = {}
    for jar in jars.glob("*.jar"):
        match = re.fullmatch(r"(.+)-(\d+\.\d+\.\d+)\.jar", jar.name)
        if match:
            found[match.group(1)] = match.group(2)
    assert found, f"no versioned jars in {jars}"
    return found


def test_connector_versions_are_the_ones_the_pinned_pyspark_is_built_with():
    jars = _jar_versions()
    group, artifact, version = KAFKA.split(":")
    assert group == "org.apache.spark"
    scala = artifact.rsplit("_", 1)[1]
    assert f"spark-sql_{scala}" in jars, f"pyspark ships no Scala {scala} spark-sql: {artifact} cannot load"
    assert version == jars[f"spark-sql_{scala}"], "the Kafka source must be the Spark release pyspark runs"
    assert S3A.rsplit(":", 1) == ["org.apache.hadoop:hadoop-aws", jars["hadoop-client-api"]], (
        "hadoop-aws must match the Hadoop client pyspark bundles"
    )


def _command(dag, task_id: str) -> list[str]:
    task = copy.deepcopy(dag.get_task(task_id))
    task._pre_execute_hook(make_context(task))
    return task._get_hook()._build_spark_submit_command(task.application)


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_kafka_jobs_get_the_kafka_source_and_s3a_lakes_get_hadoop_aws(dag):
    """Production defaults: the Kafka transport and an s3a:// lake (tests/dags/dev_config.py)."""
    assert _flag(_command(dag, "streaming_to_silver"), "--packages") == f"{KAFKA},{S3A}"
    assert _flag(_command(dag, "batch_to_bronze"), "--packages") == f"{KAFKA},{S3A}"
    assert _flag(_command(dag, "etl_to_gold"), "--packages") == S3A


def test_a_local_lake_and_landing_fetch_nothing(dag, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_TRANSPORT", "landing")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT", str(tmp_path / "lake"))
    for job in config.SPARK_JOBS:
        assert "--packages" not in _command(dag, job), job
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_LANDING_DIR", "s3a://tripclick-landing")
    assert _flag(_command(dag, "streaming_to_silver"), "--packages") == S3A
    assert "--packages" not in _command(dag, "etl_to_gold")


def test_an_empty_variable_fetches_nothing_and_a_job_override_wins(dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_PACKAGES", "{}")
    for job in config.SPARK_JOBS:
        assert "--packages" not in _command(dag, job), job
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_JOBS", '{"etl_to_gold": {"packages": "org.example:x:1"}}')
    assert _flag(_command(dag, "etl_to_gold"), "--packages") == "org.example:x:1"


def test_ivy_writes_where_the_pod_gives_it_room(dag, monkeypatch, tmp_path):
    command = _command(dag, "etl_to_gold")
    assert not any(arg.startswith("spark.jars.ivy=") for arg in command), "no folder named: Spark's default"
    monkeypatch.setenv(config.SPARK_IVY_DIR_ENV, str(tmp_path / "ivy"))
    assert f"spark.jars.ivy={tmp_path / 'ivy'}" in _command(dag, "etl_to_gold")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_PACKAGES", "{}")
    assert not any(arg.startswith("spark.jars.ivy=") for arg in _command(dag, "etl_to_gold"))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"kafak": "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"}', "unknown key(s) ['kafak']"),
        ('{"s3a": "hadoop-aws-3.5.0.jar"}', "'tripclick_spark_packages'.s3a must be a Maven coordinate"),
    ],
)
def test_a_malformed_packages_variable_fails_the_job_naming_it(dag, monkeypatch, raw, problem):
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_SPARK_PACKAGES", raw)
    with pytest.raises(config.ConfigError) as failed:
        _command(dag, "etl_to_gold")
    assert any(problem in line for line in failed.value.problems), failed.value.problems
