"""DAG layer fixtures: one DagBag per session, parsed with dev configuration and no database."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import DAGS
from tests.dags.dev_config import DEV_ENV

# Parsing must not need a database: point Airflow at one that refuses connections, so any
# query made while parsing fails the integrity test instead of silently succeeding.
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql+psycopg2://nobody:nothing@127.0.0.1:9/none"
for key, value in DEV_ENV.items():
    os.environ.setdefault(key, value)

SCHEDULED = datetime(2020, 10, 1, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


@pytest.fixture(scope="session")
def dag(dagbag):
    return dagbag.dags["tripclick_daily_pipeline"]


@pytest.fixture
def tls_dir(tmp_path: Path, monkeypatch) -> Path:
    """Files where the Docker TLS Secret would be mounted (contents are irrelevant to the DAG)."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder, not a certificate\n")
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR", str(tmp_path))
    return tmp_path


def make_context(task, logical_date=SCHEDULED, run_after=None, try_number=1):
    """The parts of a task's runtime context the DAG's hooks read."""
    dag_run = SimpleNamespace(logical_date=logical_date, run_after=run_after or logical_date)
    ti = SimpleNamespace(try_number=try_number, dag_id="tripclick_daily_pipeline", task_id=task.task_id)
    return {"task": task, "dag_run": dag_run, "ti": ti}
