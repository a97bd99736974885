"""The metric calls Airflow 3.3 makes, as input for airflow_statsd_lines.py.

Two sources, both from the installed Airflow:
- its metrics registry (metrics_template.yaml, the catalogue Airflow's docs are generated from):
  one call per metric, with sample values for the variables its names carry;
- the calls behind the series the alerts and the dashboard read, written as the source writes
  them (file and function named on each), with the series and labels the mappings must give.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

DAG_ID = "tripclick_daily_pipeline"

# A value for every variable the registry's names use; a new variable in a later Airflow fails the
# sweep with its name instead of being skipped.
SAMPLES = {
    "dag_id": DAG_ID,
    "task_id": "streaming_to_silver",
    "state": "success",
    "queue": "default",
    "pool_name": "default_pool",
    "executor_class_name": "KubernetesExecutor",
    "hostname": "tripclick-triggerer-0",
    # dag_processing/manager.py sends a DAG file as its stem.
    "file_name": "tripclick_daily_pipeline",
    "dag_file": "tripclick_daily_pipeline",
    "bundle_name": "dags-folder",
    "operator_name": "SparkSubmitOperator",
    "task_type": "SparkSubmitOperator",
    "job_id": "4711",
    "return_code": "0",
    "job_name": "schedulerjob",
    "status": "200",
    "event_type": "start",
    "transport_type": "http",
    "worker_name": "edge-worker-1",
}

# Identifiers that must end up in labels, never in a series name (one series name per DAG, task or
# pool would make every query and alert name them).
IDENTIFIERS = ("dag_id", "task_id", "pool_name", "executor_class_name", "hostname", "operator_name", "task_type")

# Registry entries of parts this deployment does not run: the Edge executor, OpenLineage.
NOT_DEPLOYED = ("edge_worker.", "edge_executor.", "ol.")

_KIND = {"counter": "incr", "gauge": "gauge", "timer": "timing"}


def registry_path() -> Path:
    """Found without importing Airflow (its import reads and writes configuration)."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("apache-airflow is not installed in this interpreter: run `make venv`")
    path = Path(next(iter(spec.submodule_search_locations))) / "_shared/observability/metrics/metrics_template.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this Airflow has no metrics registry where 3.3 keeps it")
    return path


def registry() -> list[dict[str, Any]]:
    with open(registry_path(), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["metrics"]


def registry_calls() -> list[dict[str, Any]]:
    """One call per registry metric: variables inside the name are filled in, the others go as tags."""
    calls = []
    for metric in registry():
        variables = metric.get("name_variables") or []
        missing = [v for v in variables if v not in SAMPLES]
        if missing:
            raise KeyError(f"registry metric {metric['name']!r} uses variables {missing}: add a sample to SAMPLES")
        in_name = [v for v in variables if "{" + v + "}" in metric["name"]]
        calls.append(
            {
                "id": f"registry:{metric['name']}",
                "kind": _KIND[metric["type"]],
                "name": metric["name"].format(**{v: SAMPLES[v] for v in in_name}),
                "value": 90 if metric["type"] == "timer" else 3,
                "tags": {v: SAMPLES[v] for v in variables if v not in in_name},
                "deployed": not metric["name"].startswith(NOT_DEPLOYED),
            }
        )
    return calls


def _series(name: str, value: float, **labels: str) -> tuple[str, dict[str, str], float]:
    return name, labels, value


D = {"dag_id": DAG_ID}
SILVER = {"dag_id": DAG_ID, "task_id": "streaming_to_silver"}

# (id, call, series it must produce). Timing values are seconds unless `value_ms` is given.
PIPELINE_CALLS: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, str], float]]]] = [
    (
        "scheduler beat (jobs/scheduler_job_runner.py, heartbeat)",
        {"kind": "incr", "name": "scheduler_heartbeat"},
        [_series("airflow_scheduler_heartbeat", 1)],
    ),
    (
        "dag-processor beat (jobs/dag_processor_job_runner.py)",
        {"kind": "incr", "name": "dag_processor_heartbeat"},
        [_series("airflow_dag_processor_heartbeat", 1)],
    ),
    (
        "import errors (dag_processing/manager.py)",
        {"kind": "gauge", "name": "dag_processing.import_errors", "value": 2},
        [_series("airflow_dag_processing_import_errors", 2)],
    ),
    (
        "run succeeded after 4 h (models/dagrun.py, _emit_duration_stats_for_finished_state)",
        {"kind": "timing", "name": "dagrun.duration.success", "value": 14400, "tags": D | {"run_type": "scheduled"}},
        [
            _series("airflow_dagrun_duration_success_sum", 14400, **D),
            _series("airflow_dagrun_duration_success_count", 1, **D),
            _series("airflow_dagrun_duration_success_bucket", 1, le="14400", **D),
            _series("airflow_dagrun_duration_success_bucket", 0, le="10800", **D),
        ],
    ),
    (
        "run failed after 1 h (models/dagrun.py)",
        {"kind": "timing", "name": "dagrun.duration.failed", "value": 3600, "tags": D | {"run_type": "scheduled"}},
        [
            _series("airflow_dagrun_duration_failed_sum", 3600, **D),
            _series("airflow_dagrun_duration_failed_count", 1, **D),
        ],
    ),
    (
        "run started 2.5 s late (jobs/scheduler_job_runner.py, _update_state)",
        {"kind": "timing", "name": "dagrun.schedule_delay", "value": 2.5, "tags": D},
        [
            _series("airflow_dagrun_schedule_delay_sum", 2.5, **D),
            _series("airflow_dagrun_schedule_delay_count", 1, **D),
            _series("airflow_dagrun_schedule_delay_bucket", 1, le="5", **D),
        ],
    ),
    (
        "task try ended (sdk/execution_time/task_runner.py, run: ti.finish)",
        {"side": "sdk", "kind": "incr", "name": "ti.finish", "tags": SILVER | {"state": "success"}},
        [_series("airflow_task_finish_total", 1, state="success", **SILVER)],
    ),
    (
        "task failed, no retry left (task_runner.py)",
        {"side": "sdk", "kind": "incr", "name": "ti.finish", "tags": SILVER | {"state": "failed"}},
        [_series("airflow_task_finish_total", 1, state="failed", **SILVER)],
    ),
    (
        "task failed, retry pending (task_runner.py)",
        {"side": "sdk", "kind": "incr", "name": "ti.finish", "tags": SILVER | {"state": "up_for_retry"}},
        [_series("airflow_task_finish_total", 1, state="up_for_retry", **SILVER)],
    ),
    (
        "task inside a task group (legacy names turn its dots into __)",
        {"side": "sdk", "kind": "incr", "name": "ti.finish", "tags": D | {"task_id": "grp.load", "state": "failed"}},
        [_series("airflow_task_finish_total", 1, task_id="grp__load", state="failed", **D)],
    ),
    (
        "task started (task_runner.py, run: ti.start)",
        {"side": "sdk", "kind": "incr", "name": "ti.start", "tags": SILVER},
        [_series("airflow_task_start_total", 1, **SILVER)],
    ),
    (
        "failure counted by the task (task_runner.py, _finalize_task_failure)",
        {"side": "sdk", "kind": "incr", "name": "ti_failures", "tags": SILVER},
        [_series("airflow_ti_failures", 1)],
    ),
    (
        "failure counted by the scheduler (models/taskinstance.py, handle_failure)",
        {"kind": "incr", "name": "ti_failures", "tags": SILVER},
        [_series("airflow_ti_failures", 1)],
    ),
    (
        "success counted by the task (task_runner.py, _handle_current_task_success)",
        {"side": "sdk", "kind": "incr", "name": "ti_successes", "tags": SILVER},
        [_series("airflow_ti_successes", 1)],
    ),
    (
        "operator failure (task_runner.py)",
        {
            "side": "sdk",
            "kind": "incr",
            "name": "operator_failures",
            "tags": SILVER | {"operator_name": "SparkSubmitOperator"},
        },
        [_series("airflow_operator_failures", 1, operator_name="SparkSubmitOperator")],
    ),
    (
        "task try took 1 h (task_runner.py, finalize: duration in ms)",
        {"side": "sdk", "kind": "timing", "name": "task.duration", "value_ms": 3600000.0, "tags": SILVER},
        [
            _series("airflow_dag_task_duration_sum", 3600, **SILVER),
            _series("airflow_dag_task_duration_count", 1, **SILVER),
            _series("airflow_dag_task_duration_bucket", 1, le="3600", **SILVER),
            _series("airflow_dag_task_duration_bucket", 0, le="2700", **SILVER),
        ],
    ),
    (
        "task running now (jobs/scheduler_job_runner.py, _emit_ti_metrics)",
        {"kind": "gauge", "name": "ti.running", "value": 1, "tags": SILVER | {"queue": "default"}},
        [_series("airflow_ti_running", 1, queue="default", **SILVER)],
    ),
    (
        "task deferred (wait_for_*; _emit_ti_metrics)",
        {
            "kind": "gauge",
            "name": "ti.deferred",
            "value": 1,
            "tags": D | {"task_id": "wait_for_etl_to_gold_window", "queue": "default"},
        },
        [_series("airflow_ti_deferred", 1, queue="default", task_id="wait_for_etl_to_gold_window", **D)],
    ),
    (
        "pool slots (scheduler_job_runner.py, _emit_pool_metrics)",
        {"kind": "gauge", "name": "pool.open_slots", "value": 128, "tags": {"pool_name": "default_pool"}},
        [_series("airflow_pool_open_slots", 128, pool_name="default_pool")],
    ),
]

# Sent per (dag, task) under one tag-less name and no legacy name: dropped although no twin is kept.
DROPPED_WITHOUT_TWIN = {"airflow.ti.awaiting_input"}
PIPELINE_CALLS.append(
    (
        "task awaiting input (_emit_ti_metrics; no legacy name)",
        {"kind": "gauge", "name": "ti.awaiting_input", "value": 1, "tags": SILVER | {"queue": "default"}},
        [],
    )
)
