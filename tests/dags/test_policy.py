"""Rules every DAG in the folder must follow."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.conftest import DAGS

ALLOWED_OPERATORS = {"PythonOperator", "DockerOperator", "SparkSubmitOperator", "DateTimeSensorAsync"}
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


def test_every_task_has_retries_timeout_and_failure_alert(dags):
    for dag in dags:
        for task in dag.tasks:
            assert task.retries is not None, task.task_id
            assert isinstance(task.execution_timeout, timedelta), task.task_id
            assert task.execution_timeout > timedelta(0), task.task_id
            assert task.on_failure_callback, task.task_id


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
