"""The DAG folder imports cleanly, holds exactly the expected DAGs, and parses without a database."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import DAGS, REPO
from tests.dags.dev_config import DEV_ENV

EXPECTED_DAG_IDS = {"tripclick_daily_pipeline"}


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_exactly_the_expected_dags(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAG_IDS


def test_each_dag_file_is_named_after_its_dag(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.fileloc.endswith(f"/{dag_id}.py")


def test_helper_package_is_ignored_by_the_dag_processor():
    ignored = (DAGS / ".airflowignore").read_text().split()
    assert "tripclick/" in ignored


def test_parsing_needs_no_database_and_no_network():
    """A fresh interpreter parses the DAG with only env-var configuration and an unreachable DB."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(REPO / ".state" / "test-airflow-home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody:nothing@127.0.0.1:9/none",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **DEV_ENV,
    }
    code = (
        # BundleDagBag is what the dag-processor and the task runner use: it puts the bundle on sys.path.
        "from pathlib import Path; from airflow.dag_processing.dagbag import BundleDagBag;"
        f"bag = BundleDagBag(dag_folder={str(DAGS)!r}, bundle_path=Path({str(DAGS)!r}));"
        "assert not bag.import_errors, bag.import_errors;"
        "print(sorted(bag.dag_ids))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "['tripclick_daily_pipeline']" in result.stdout


def test_no_dag_file_imports_another_dag():
    dag_modules = {path.stem for path in DAGS.glob("*.py")}
    for path in DAGS.glob("*.py"):
        source = path.read_text()
        for other in dag_modules - {path.stem}:
            assert f"import {other}" not in source and f"from {other}" not in source, (path.name, other)
