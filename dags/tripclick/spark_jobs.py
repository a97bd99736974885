"""The Spark applications: spark-submit arguments and conf, resolved when the task starts.

Client deploy mode: the driver runs inside the Airflow task, so executors on the Spark cluster
must be able to call it back. The driver advertises ``SPARK_DRIVER_HOST`` (the node's IP in
Kubernetes, where Spark tasks use host networking) on fixed ports that the cluster's firewall and
the chart's NetworkPolicy open.

A job whose settings name a ``master`` (``local[N]``) runs whole inside its task instead: no executor
calls it back, so it needs none of that, and it takes none of the cluster's cores.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from tripclick import config
from tripclick.run_context import event_date, show_in_ui

log = logging.getLogger(__name__)

SPARK_VARIABLES = (
    "tripclick_lake_root",
    "tripclick_spark_apps_dir",
    "tripclick_spark_jobs",
    "tripclick_spark_conf",
    "tripclick_spark_packages",
    "tripclick_spark_driver_host",
    "tripclick_spark_driver_port",
    "tripclick_spark_blockmanager_port",
    "tripclick_transport",
    "tripclick_kafka_brokers",
    "tripclick_kafka_topic",
    "tripclick_landing_dir",
)

# What every job gets unless tripclick_spark_jobs says otherwise.
_COMMON_JOB_DEFAULTS: dict[str, Any] = {
    "packages": None,
    "conf": {},
    "executor_memory": "1g",
    "executor_cores": 1,
    "driver_memory": "768m",
    "extra_args": [],
    # None: the master of Connection spark_cluster.
    "master": None,
}
_JOB_SPECIFICS: dict[str, dict[str, Any]] = {
    # Long-running (about 1 h): one executor core is enough for ~150k events per day.
    "streaming_to_silver": {"reads_transport": True, "total_executor_cores": 1},
    "batch_to_bronze": {"reads_transport": True, "total_executor_cores": 2},
    "etl_to_gold": {"reads_transport": False, "total_executor_cores": 2},
    # Deletes a failed day's partial partitions: a few file-system calls, run after the day's jobs, so one
    # local thread is plenty and it never waits for (or takes) the cluster's cores.
    "discard_partial_day": {"reads_transport": False, "total_executor_cores": 1, "master": "local[1]"},
}
DEFAULT_JOBS: dict[str, dict[str, Any]] = {
    job: {"application": f"{job}.py", **_COMMON_JOB_DEFAULTS, **specifics} for job, specifics in _JOB_SPECIFICS.items()
}
_OVERRIDABLE = {
    "application": str,
    "packages": str,
    "conf": dict,
    "executor_memory": str,
    "executor_cores": int,
    "total_executor_cores": int,
    "driver_memory": str,
    "extra_args": list,
    "master": str,
}


@dataclass(frozen=True)
class SparkJobSpec:
    name: str
    application: str
    application_args: list[str]
    conf: dict[str, str]
    packages: str | None
    master: str | None = None


def _job_settings(job: str, overrides: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    settings = copy.deepcopy(DEFAULT_JOBS[job])
    unknown_jobs = sorted(set(overrides) - set(DEFAULT_JOBS))
    if unknown_jobs and job == config.SPARK_JOBS[0]:
        problems.append(
            f"Variable 'tripclick_spark_jobs' names unknown job(s) {unknown_jobs}: use {list(DEFAULT_JOBS)}"
        )
    for key, value in (overrides.get(job) or {}).items():
        expected = _OVERRIDABLE.get(key)
        if expected is None:
            problems.append(
                f"Variable 'tripclick_spark_jobs'.{job}: unknown key {key!r} (known: {sorted(_OVERRIDABLE)})"
            )
        elif not isinstance(value, expected) or isinstance(value, bool):
            problems.append(f"Variable 'tripclick_spark_jobs'.{job}.{key} must be a {expected.__name__}, got {value!r}")
        else:
            settings[key] = value
    return settings


def _driver_host(values: dict[str, Any], problems: list[str], in_driver: bool) -> str:
    host = os.environ.get(config.DRIVER_HOST_ENV) or values["tripclick_spark_driver_host"]
    # Only the Spark task's own pod knows its node IP; other tasks cannot judge it.
    if not host and in_driver:
        problems.append(
            f"Spark driver host unknown: set env {config.DRIVER_HOST_ENV} in the task's environment "
            "(Kubernetes: the node IP, set by the Spark pod override) or Variable 'tripclick_spark_driver_host'"
        )
    return host


def _packages(wanted: list[str], catalog: dict[str, Any], problems: list[str]) -> str:
    """Comma-separated coordinates of the connectors this job needs, from Variable tripclick_spark_packages."""
    unknown = sorted(set(catalog) - set(config.SPARK_PACKAGES))
    if unknown:
        problems.append(
            f"Variable 'tripclick_spark_packages' has unknown key(s) {unknown}: use {sorted(config.SPARK_PACKAGES)}"
        )
    coordinates = []
    for key in wanted:
        value = catalog.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or value.count(":") != 2:
            problems.append(
                f"Variable 'tripclick_spark_packages'.{key} must be a Maven coordinate group:artifact:version, "
                f"got {value!r}"
            )
            continue
        coordinates.append(value)
    return ",".join(coordinates)


def spark_job(job: str, day: str, values: dict[str, Any], problems: list[str], in_driver: bool = True) -> SparkJobSpec:
    settings = _job_settings(job, values["tripclick_spark_jobs"], problems)
    root = (values["tripclick_lake_root"] or "").rstrip("/")
    args = ["--date", day, "--silver-path", f"{root}/silver", "--bronze-path", f"{root}/bronze"]
    wanted = []
    storage = [root]
    if settings["reads_transport"]:
        if values["tripclick_transport"] == "kafka":
            brokers = config.require(values, "tripclick_kafka_brokers", problems, "when tripclick_transport is 'kafka'")
            args += ["--source", "kafka", "--kafka-brokers", brokers or "", "--topic", values["tripclick_kafka_topic"]]
            wanted.append("kafka")
        else:
            landing = config.require(values, "tripclick_landing_dir", problems, "when tripclick_transport is 'landing'")
            args += ["--source", "landing", "--landing-path", landing or ""]
            storage.append(landing or "")
    # Spark's own jars bring no s3a file system: hadoop-aws (with the AWS SDK it depends on) does.
    if any(urlsplit(path).scheme == "s3a" for path in storage):
        wanted.append("s3a")
    packages = _packages(wanted, values["tripclick_spark_packages"], problems)
    if settings["packages"] is not None:
        packages = settings["packages"]
    args += [str(arg) for arg in settings["extra_args"]]

    common_conf = values["tripclick_spark_conf"]
    bad = {k: v for k, v in common_conf.items() if not isinstance(v, (str, int, float)) or isinstance(v, bool)}
    if bad:
        problems.append(f"Variable 'tripclick_spark_conf': values must be strings or numbers, got {bad}")
    conf = {key: str(value) for key, value in common_conf.items()}
    conf.update({key: str(value) for key, value in settings["conf"].items()})
    # Ivy resolves --packages into a folder the task may write: in Kubernetes an emptyDir the Spark
    # pod override mounts and names here (the image's home is not meant to hold downloads).
    ivy_dir = os.environ.get(config.SPARK_IVY_DIR_ENV)
    if packages and ivy_dir:
        conf.setdefault("spark.jars.ivy", ivy_dir)
    if settings["master"] is None:
        conf.update(
            {
                "spark.driver.host": _driver_host(values, problems, in_driver),
                "spark.driver.port": str(values["tripclick_spark_driver_port"]),
                "spark.driver.blockManager.port": str(values["tripclick_spark_blockmanager_port"]),
                "spark.driver.memory": settings["driver_memory"],
                "spark.executor.memory": settings["executor_memory"],
                "spark.executor.cores": str(settings["executor_cores"]),
                "spark.cores.max": str(settings["total_executor_cores"]),
            }
        )
    else:
        # In local mode the one JVM is driver and executor: nothing calls it back, no cluster core is taken.
        conf["spark.driver.memory"] = settings["driver_memory"]
    return SparkJobSpec(
        name=f"tripclick-{job}-{day}",
        application=f"{values['tripclick_spark_apps_dir'].rstrip('/')}/{settings['application']}",
        application_args=args,
        conf=conf,
        packages=packages or None,
        master=settings["master"],
    )


def resolve_spark_job(job: str, day: str) -> SparkJobSpec:
    problems: list[str] = []
    values = config.read_variables(SPARK_VARIABLES, problems)
    config.get_connection(config.SPARK_CONN_ID, problems)
    spec = spark_job(job, day, values, problems)
    config.raise_if(problems)
    return spec


def apply_spec(task: Any, spec: SparkJobSpec) -> None:
    task.name = spec.name
    task.application = spec.application
    task.application_args = spec.application_args
    task.conf = spec.conf
    task.packages = spec.packages
    task.master = spec.master
    show_in_ui(task)
    where = f" (master {spec.master})" if spec.master else ""
    log.info("Spark job %s%s: %s %s", spec.name, where, spec.application, " ".join(spec.application_args))


def bind_spark_job(job: str, context: Any) -> None:
    """pre_execute hook of a Spark task: the day's application, arguments and conf."""
    apply_spec(context["task"], resolve_spark_job(job, event_date(context)))


class TripclickSparkSubmitOperator(SparkSubmitOperator):
    """spark-submit through Connection spark_cluster, unless the bound job names its own master (``local[N]``).

    The provider takes the master from the Connection only; a job that runs inside its task overrides it
    here, after the provider has resolved everything else (spark-binary and the like) from the Connection.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.master: str | None = None

    def _get_hook(self):
        hook = super()._get_hook()
        if self.master:
            hook._connection["master"] = self.master
        return hook
