"""`make bench`: cold import time of the DAG file against a trivial DAG that imports only airflow.sdk.

Every KubernetesExecutor task pod starts a fresh interpreter and parses the DAG file once, so this
cost is paid per task. Each sample is a new process; samples of the two files are interleaved so
machine noise hits both alike. Prints medians and the ratio; asserts nothing (see docs/testing.md).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "tripclick_daily_pipeline.py"
TRIVIAL = Path(__file__).with_name("trivial_dag.py")
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
TARGET_RATIO = 1.3

PROBE = """
import importlib.util, json, sys, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"import_s": time.perf_counter() - t0}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=tempfile.mkdtemp(prefix="bench-airflow-home-"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # Answered from the environment, as in a pod: no database round trip in the figure.
        AIRFLOW_VAR_TRIPCLICK_TASK_POLICY="{}",
        PYTHONPATH=str(REPO / "dags"),
        PYTHONDONTWRITEBYTECODE="0",
    )
    return env


def _sample(path: Path, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["import_s"]


# Where the DAG file's time goes, phase by phase, in one fresh interpreter.
PHASES_PROBE = """
import importlib.util, json, sys, time
marks = [time.perf_counter()]
import airflow.sdk
marks.append(time.perf_counter())
import airflow.providers.apache.spark.operators.spark_submit, airflow.providers.docker.operators.docker
import airflow.providers.standard.operators.python, airflow.providers.standard.sensors.date_time
marks.append(time.perf_counter())
import tripclick.notify, tripclick.pod_overrides, tripclick.preflight, tripclick.producers, tripclick.spark_jobs
from tripclick.policy import load_policy
load_policy()
marks.append(time.perf_counter())
spec = importlib.util.spec_from_file_location("bench_dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
marks.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""
PHASES = (
    "airflow.sdk",
    "operators' own imports (spark, docker, python, sensor)",
    "tripclick helpers + task policy Variable",
    "building the DAG (9 tasks)",
)


def _phases(env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(max(3, RUNS // 2)):
        out = subprocess.run(
            [sys.executable, "-c", PHASES_PROBE, str(DAG_FILE)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        samples.append(json.loads(out.strip().splitlines()[-1]))
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def _importtime_breakdown(env: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time in the DAG file beyond what airflow.sdk costs."""
    code = (
        "import airflow.sdk\nimport importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('bench_dag', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
    )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, str(DAG_FILE)], env=env, capture_output=True, text=True
    ).stderr
    totals: dict[str, float] = {}
    seen_sdk_done = False
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not cumulative.isdigit():
            continue
        if name == "airflow.sdk":
            seen_sdk_done = True
            continue
        if seen_sdk_done and not line.split("|")[2].startswith("  "):
            totals[name] = totals.get(name, 0.0) + int(cumulative) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> int:
    env = _env()
    # Warm the bytecode caches once so the figure is the cold interpreter, not the first compile.
    _sample(TRIVIAL, env)
    _sample(DAG_FILE, env)
    dag_times, trivial_times = [], []
    for _ in range(RUNS):
        trivial_times.append(_sample(TRIVIAL, env))
        dag_times.append(_sample(DAG_FILE, env))
    dag_median = statistics.median(dag_times)
    trivial_median = statistics.median(trivial_times)
    ratio = dag_median / trivial_median
    print(f"DAG parse benchmark ({RUNS} runs each, fresh interpreter per run, medians)")
    print(
        f"  trivial DAG (airflow.sdk only)   {trivial_median:7.3f} s"
        f"   (min {min(trivial_times):.3f}, max {max(trivial_times):.3f})"
    )
    print(
        f"  tripclick_daily_pipeline.py      {dag_median:7.3f} s   (min {min(dag_times):.3f}, max {max(dag_times):.3f})"
    )
    print(f"  ratio                            {ratio:7.2f}     (target <= {TARGET_RATIO})")
    print("  phases of the DAG file (medians):")
    for name, seconds in zip(PHASES, _phases(env), strict=True):
        print(f"    {seconds:6.3f} s  {name}")
    if ratio > TARGET_RATIO:
        print(
            "  above target; top-level imports of the DAG file beyond airflow.sdk (cumulative, one -X importtime run):"
        )
        for name, seconds in _importtime_breakdown(env):
            print(f"    {seconds:6.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
