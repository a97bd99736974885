"""Monitoring layer fixtures: the statsd mappings as the chart renders them, the lines Airflow sends,
and the series the real statsd_exporter makes of them with those mappings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from demo.stack.monitoring import mapping_document
from tests.chart import chartlib
from tests.monitoring import metric_calls
from tests.monitoring.exporter_process import ExporterProcess

HERE = Path(__file__).resolve().parent
MONITORING_FILES = chartlib.CHART / "files" / "monitoring"
RULES = MONITORING_FILES / "tripclick-alerts.rules.yaml"
DASHBOARD = MONITORING_FILES / "tripclick-dashboard.json"
RULE_TESTS = HERE / "rules"
PRODUCTION = chartlib.OVERLAYS[chartlib.PRODUCTION]
# Series of the kubelet (cAdvisor), which the dashboard's control-plane panels read; not from statsd.
KUBELET_SERIES = {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}


def promtool(*args: str, cwd: Path | None = None) -> str:
    """Run promtool; a failure fails the test with promtool's own output."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run `make system-deps` (Debian package prometheus)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def airflow_values(names: tuple[str, ...] = PRODUCTION) -> dict[str, Any]:
    """The official chart's defaults under the overlays' `airflow:` values, as Helm coalesces them."""
    defaults = chartlib.load_yaml(chartlib.SHARED_CHART / "values.yaml")
    return chartlib.deep_merge(defaults, chartlib.overlay_values(names)["airflow"])


def metrics_config(values: dict[str, Any]) -> dict[str, str]:
    """The [metrics] options airflow.cfg gets; the chart templates statsd_on from statsd.enabled."""
    config = dict(values["config"].get("metrics") or {})
    config["statsd_on"] = "True" if values["statsd"]["enabled"] else "False"
    return {k: str(v) for k, v in config.items() if "{{" not in str(v)}


@pytest.fixture(scope="session")
def production_airflow() -> dict[str, Any]:
    if not (chartlib.SHARED_CHART / "values.yaml").is_file():
        pytest.skip(f"{chartlib.SHARED_CHART}/values.yaml not found (official chart defaults)")
    return airflow_values()


@pytest.fixture(scope="session")
def mappings(production_airflow) -> dict[str, Any]:
    return mapping_document(production_airflow["statsd"])


@pytest.fixture(scope="session")
def airflow_lines(production_airflow) -> dict[str, list[str]]:
    """call id -> the StatsD lines Airflow sent for it, for the registry sweep and the pipeline calls."""
    calls = [c | {"id": c["id"]} for c in metric_calls.registry_calls()]
    calls += [call | {"id": ident} for ident, call, _ in metric_calls.PIPELINE_CALLS]
    request = {"metrics": metrics_config(production_airflow), "calls": calls}
    done = subprocess.run(
        [sys.executable, str(HERE / "airflow_statsd_lines.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"capturing Airflow's StatsD lines failed:\n{done.stderr[-4000:]}")
    return {call["id"]: lines for call, lines in zip(calls, json.loads(done.stdout), strict=True)}


@pytest.fixture(scope="session")
def exporter(mappings, airflow_lines, tmp_path_factory) -> ExporterProcess:
    """The real statsd_exporter with the production mappings, fed every line Airflow sent."""
    with ExporterProcess(mappings, tmp_path_factory.mktemp("exporter")) as process:
        process.feed(line for lines in airflow_lines.values() for line in lines)
        yield process


@pytest.fixture(scope="session")
def produced_series(exporter) -> set[str]:
    return exporter.series_names()


@pytest.fixture(scope="session")
def full_render(tmp_path_factory) -> dict[str, str]:
    """The production release with the official chart (skips without its source, like tests/chart)."""
    source, reason = chartlib.official_chart_source()
    if source is None:
        pytest.skip(reason)
    return chartlib.render_chart(chartlib.assemble(tmp_path_factory.mktemp("full"), source), full=True)


@pytest.fixture(scope="session")
def wrapper_chart(tmp_path_factory) -> Path:
    """The wrapper alone (its dependency absent on purpose): renders without the official chart."""
    return chartlib.assemble(tmp_path_factory.mktemp("wrapper"), None)
