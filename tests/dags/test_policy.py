"""Rules every DAG in the folder must follow."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest

from tests.conftest import DAGS

# TripclickSparkSubmitOperator: the provider's, with a job's own master (local mode) when it names one.
ALLOWED_OPERATORS = {"PythonOperator", "DockerOperator", "TripclickSparkSubmitOperator", "DateTimeSensorAsync"}
# Hosts, ports and addresses belong in Connections and Variables, never in DAG code.
LITERAL_HOST_PATTERNS = {
    "IPv4 address": re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
    # A URL whose host is an f-string field is built from configuration.
    "URL": re.compile(r"\b[a-z][a-z0-9+.-]*://(?!\{)"),
    "localhost": re.compile(r"\blocalhost\b"),
    "host:port": re.compile(r"\b[a-z][a-z0-9.-]*:\d{2,5}\b"),
}
# config.py holds the documented defaults and example connection URIs on purpose.
CODE_FILES = [p for p in [*DAGS.glob("*.py"), *(DAGS / "tripclick").glob("*.py")] if p.name != "config.py"]


@pytest.fixture(scope="module")
def dags(dagbag):
    return list(dagbag.dags.values())


def test_every_dag_is_documented_owned_and_tagged(dags):
    for dag in dags:
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        assert dag.tags, dag.dag_id
        assert dag.catchup is False, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag.dag_id, task.task_id)


# The policy stage each task takes its retries and timeout from.
STAGE_OF_TASK = {
    "preflight": "preflight",
    "producer_server0": "producer",
    "producer_server1": "producer",
    "streaming_to_silver": "streaming_to_silver",
    "batch_to_bronze": "batch_to_bronze",
    "etl_to_gold": "etl_to_gold",
    "wait_for_batch_to_bronze_window": "wait",
    "wait_for_etl_to_gold_window": "wait",
    "notify_completion": "notify",
    "discard_partial_day": "discard_partial_day",
}
# Tasks that talk to a remote service, where a transient fault (a daemon restarting) must be retried.
REMOTE_TASKS = {"preflight", "producer_server0", "producer_server1", "streaming_to_silver", "batch_to_bronze"}
REMOTE_TASKS |= {"etl_to_gold", "discard_partial_day"}


def test_every_task_follows_its_policy_stage_with_the_variable_unset(dag):
    """Production parses with no tripclick_task_policy Variable: every task gets its stage's defaults."""
    from tripclick.policy import DEFAULT_POLICY

    assert "AIRFLOW_VAR_TRIPCLICK_TASK_POLICY" not in os.environ
    assert {task.task_id for task in dag.tasks} == set(STAGE_OF_TASK)
    for task in dag.tasks:
        stage = DEFAULT_POLICY[STAGE_OF_TASK[task.task_id]]
        assert task.retries == stage["retries"], task.task_id
        assert task.execution_timeout == timedelta(seconds=stage["timeout_s"]), task.task_id
        if task.retries:
            assert task.retry_delay == timedelta(seconds=stage["retry_delay_s"]), task.task_id
            assert task.retry_exponential_backoff, task.task_id


def test_tasks_that_talk_to_remote_services_are_retried(dag):
    for task_id in REMOTE_TASKS:
        assert dag.get_task(task_id).retries >= 1, task_id


def test_every_task_alerts_on_failure(dag):
    from tripclick.notify import alert_failure

    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert alert_failure in callbacks, task.task_id


def test_only_operators_we_chose(dags):
    for dag in dags:
        for task in dag.tasks:
            assert type(task).__name__ in ALLOWED_OPERATORS, (task.task_id, type(task).__name__)


@pytest.mark.parametrize("path", CODE_FILES, ids=lambda p: str(p.relative_to(DAGS)))
def test_no_literal_hosts_in_dag_code(path):
    source = path.read_text()
    for what, pattern in LITERAL_HOST_PATTERNS.items():
        match = pattern.search(source)
        assert match is None, f"{path.name}: literal {what} {match.group(0)!r}; move it to a Variable or Connection"
