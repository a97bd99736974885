"""The DAG folder imports cleanly, holds exactly the expected DAGs, and parses without a database."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import DAGS, REPO
from tests.dags.dev_config import DEV_ENV
from tests.dags.imports import imported_modules

EXPECTED_DAG_IDS = {"tripclick_daily_pipeline"}


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_exactly_the_expected_dags(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAG_IDS


def test_each_dag_file_is_named_after_its_dag(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.fileloc.endswith(f"/{dag_id}.py")


def test_the_parser_reads_only_the_dag_files(dagbag):
    """What the parser actually visited: the DAG file, never the helper package."""
    parsed = {Path(stat.file).as_posix() for stat in dagbag.dagbag_stats}
    assert parsed == {"tripclick_daily_pipeline.py"}


def test_without_airflowignore_the_helper_package_would_be_parsed(tmp_path):
    """The ignore file is what keeps the helpers out: the same folder without it lists them."""
    from airflow.utils.file import list_py_file_paths

    def listed(folder: Path) -> set[str]:
        return {Path(p).relative_to(folder).as_posix() for p in list_py_file_paths(str(folder))}

    copy = tmp_path / "dags"
    shutil.copytree(DAGS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert listed(copy) == {"tripclick_daily_pipeline.py"}
    (copy / ".airflowignore").unlink()
    assert {"tripclick/config.py", "tripclick/notify.py"} <= listed(copy)


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


def test_parses_with_a_listener_plugin_installed():
    """Lineage tools install task listeners; Airflow refuses end_from_trigger tasks when one is present."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(REPO / ".state" / "test-airflow-home-listener"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(Path(__file__).parent / "listener_plugin"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody:nothing@127.0.0.1:9/none",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **DEV_ENV,
    }
    code = (
        "from pathlib import Path; from airflow.dag_processing.dagbag import BundleDagBag;"
        "from airflow.listeners.listener import get_listener_manager;"
        f"bag = BundleDagBag(dag_folder={str(DAGS)!r}, bundle_path=Path({str(DAGS)!r}));"
        "assert get_listener_manager().has_listeners, 'the listener plugin was not loaded';"
        "assert not bag.import_errors, bag.import_errors;"
        "print(sorted(bag.dag_ids))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "['tripclick_daily_pipeline']" in result.stdout


def imports_of_other_dags(folder: Path) -> list[tuple[str, str]]:
    """(importing file, imported DAG module) for every import of a DAG file's module inside ``folder``."""
    dag_modules = {path.stem for path in folder.glob("*.py")}
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in imported_modules(path, folder):
            top = name.split(".")[0]
            if top in dag_modules and top != path.stem:
                found.append((path.relative_to(folder).as_posix(), top))
    return found


def test_no_dag_file_or_helper_imports_a_dag():
    assert imports_of_other_dags(DAGS) == []


def test_a_dag_importing_another_dag_is_caught(tmp_path):
    """The check above on a folder that breaks the rule, from a DAG file and from a helper module."""
    shutil.copytree(DAGS, tmp_path / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "dags"
    (folder / "tripclick_weekly_report.py").write_text(
        "from tripclick_daily_pipeline import DOC_MD\nimport tripclick.config\n"
    )
    (folder / "tripclick" / "extra.py").write_text("import tripclick_daily_pipeline as daily\n")
    assert imports_of_other_dags(folder) == [
        ("tripclick/extra.py", "tripclick_daily_pipeline"),
        ("tripclick_weekly_report.py", "tripclick_daily_pipeline"),
    ]
