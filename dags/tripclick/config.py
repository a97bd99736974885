"""Pipeline configuration: the Airflow Variables and Connections the DAG reads, with defaults.

``VARIABLES`` is the single documented table (docs/configuration.md's reference is checked
against it). Values are read when a task runs, never at parse time, except the task policy
(see ``policy.py``). Every problem is collected and reported at once, naming the item and how
to set it, so a misconfigured deployment fails in one go instead of one fix per run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

WEB_SERVERS = ("server0", "server1")
SPARK_JOBS = ("streaming_to_silver", "batch_to_bronze", "etl_to_gold")

DOCKER_CONN_IDS = {server: f"docker_{server}" for server in WEB_SERVERS}
SPARK_CONN_ID = "spark_cluster"
SLACK_CONN_ID = "slack_webhook"
# Email alerts: the SMTP server and sender (extra `from_email`) of this Connection, the recipients of
# Variable tripclick_alert_email_to. Email stays off while that Variable is unset.
SMTP_CONN_ID = "smtp_alerts"
ALERT_EMAIL_TO_VARIABLE = "tripclick_alert_email_to"


@dataclass(frozen=True)
class ConnectionSpec:
    conn_id: str
    example: str
    used_by: str
    # The pipeline runs without it (email alerts); every other Connection is required.
    optional: bool = False

    @property
    def env_name(self) -> str:
        return connection_env_name(self.conn_id)


def connection_env_name(conn_id: str) -> str:
    """The environment variable Airflow reads the Connection from (a Kubernetes Secret's key, the demo's env)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


# Every Connection the DAG uses: docs/configuration.md's reference, `make secrets` (its input's keys and
# the Secrets' keys) and the demo's table (values/demo.yaml, checked by the DAG layer) all read this one.
CONNECTIONS: tuple[ConnectionSpec, ...] = (
    *(
        ConnectionSpec(conn_id, f"tcp://<{server} host>:2376", f"preflight, producer_{server}")
        for server, conn_id in DOCKER_CONN_IDS.items()
    ),
    ConnectionSpec(SPARK_CONN_ID, "spark://<master host>:7077", "preflight, the three Spark tasks"),
    ConnectionSpec(
        SLACK_CONN_ID,
        '{"conn_type": "slackwebhook", "password": "https://hooks.slack.com/services/T/B/X"}',
        "preflight, failure alerts, notify_completion",
    ),
    ConnectionSpec(
        SMTP_CONN_ID,
        '{"conn_type": "smtp", "host": "<smtp host>", "port": 587, "login": "<user>", '
        '"password": "<password>", "extra": {"from_email": "airflow@example.com"}}',
        "failure, retry and late alerts and notify_completion by email (when the recipients are set)",
        optional=True,
    ),
)
CONNECTION_EXAMPLES = {spec.conn_id: spec.example for spec in CONNECTIONS}

# Where the Spark driver learns the address executors must call back to. In Kubernetes the
# task pod gets the node's IP here through the downward API (see pod_overrides.py).
DRIVER_HOST_ENV = "SPARK_DRIVER_HOST"
# Where spark-submit keeps what it fetches for --packages, when the task's environment names a folder
# (Kubernetes: the Spark pod override's emptyDir, see pod_overrides.py).
SPARK_IVY_DIR_ENV = "TRIPCLICK_SPARK_IVY_DIR"

# Fixed paths inside the producer container: part of the producer image's contract.
PRODUCER_DATA_MOUNT = "/app/data"
PRODUCER_LANDING_MOUNT = "/app/landing"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")

# The connectors spark-submit fetches from Maven (`--packages`), by what needs them: the Kafka source
# for jobs that read Kafka, the s3a:// file system for jobs whose lake or landing is on S3. Their
# versions are the ones the pinned pyspark is built with (its jars/ folder: spark-*_2.13-<version>,
# hadoop-client-api-<version>); tests/dags checks them against the installed pyspark.
SPARK_PACKAGES = {
    "kafka": "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
    "s3a": "org.apache.hadoop:hadoop-aws:3.5.0",
}


class ConfigError(AirflowFailException):
    """One or more configuration items are missing or malformed.

    Waiting does not fix configuration, so the task fails at once instead of spending its retries
    (an AirflowFailException is never retried); the alert says so.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("tripclick pipeline configuration is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class VariableSpec:
    name: str
    kind: str  # str | int | bool | choice | json-object | json-list
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None

    def parse(self, raw: str) -> Any:
        """Turn the stored string into a typed value; raises ValueError with the expected form."""
        if self.kind == "str":
            if not raw.strip():
                raise ValueError("is empty")
            return raw.strip()
        if self.kind == "int":
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"must be an integer, got {raw!r}") from None
        if self.kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(f"must be true or false, got {raw!r}")
        if self.kind == "choice":
            if raw not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, got {raw!r}")
            return raw
        if self.kind in ("json-object", "json-list"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError(f"is not valid JSON ({err.msg} at position {err.pos})") from None
            expected = dict if self.kind == "json-object" else list
            if not isinstance(value, expected):
                raise ValueError(f"must be a JSON {expected.__name__}, got {type(value).__name__}")
            return value
        raise AssertionError(f"unknown kind {self.kind}")


VARIABLES: tuple[VariableSpec, ...] = (
    VariableSpec("tripclick_producer_image", "str", "tripclick-producer", "Producer image repository."),
    VariableSpec("tripclick_producer_tag", "str", "1.0.0", "Producer image tag."),
    VariableSpec(
        "tripclick_producer_mode",
        "choice",
        "realtime",
        "`realtime` replays the day at 1x speed (about 1 h); `batch` sends it at once.",
        choices=("realtime", "batch"),
    ),
    VariableSpec(
        "tripclick_producer_extra_env",
        "json-object",
        {},
        "Extra environment for the producer container (JSON object), e.g. a replay speed.",
    ),
    VariableSpec(
        "tripclick_data_dir_server0",
        "str",
        "/srv/tripclick/data",
        "Host folder on server0 with `date=YYYY-MM-DD/events.json`, mounted read-only.",
    ),
    VariableSpec(
        "tripclick_data_dir_server1",
        "str",
        "/srv/tripclick/data",
        "Host folder on server1 with `date=YYYY-MM-DD/events.json`, mounted read-only.",
    ),
    VariableSpec(
        "tripclick_transport",
        "choice",
        "kafka",
        "`kafka` (production) or `landing` (a folder the producers write and Spark streams; "
        "for machines without a Kafka broker).",
        choices=("kafka", "landing"),
    ),
    VariableSpec(
        "tripclick_kafka_brokers",
        "str",
        "",
        "Kafka bootstrap servers, `host:port[,host:port]`; required when transport is `kafka`.",
    ),
    VariableSpec("tripclick_kafka_topic", "str", "tripclick_raw_logs", "Kafka topic of the raw logs."),
    VariableSpec(
        "tripclick_landing_dir",
        "str",
        "",
        "Landing folder seen by the Docker hosts and the Spark cluster; required when transport is `landing`.",
    ),
    VariableSpec(
        "tripclick_lake_root",
        "str",
        None,
        "Lake root, e.g. `s3a://<bucket>`; silver and bronze live below it.",
    ),
    VariableSpec(
        "tripclick_spark_apps_dir",
        "str",
        # The client-mode driver reads the application file in the task pod, where git-sync checks this
        # repository out (chart 1.21.0: the dags volume at <airflow home>/dags, the checkout linked as `repo`).
        "/opt/airflow/dags/repo/workloads/spark",
        "Folder with `streaming_to_silver.py`, `batch_to_bronze.py`, `etl_to_gold.py`, `discard_partial_day.py`; "
        "the default is `workloads/spark` in the task pod's git-sync checkout.",
    ),
    VariableSpec(
        "tripclick_spark_jobs",
        "json-object",
        {},
        "Per-job overrides `{job: {application, packages, conf, executor_memory, executor_cores, "
        "total_executor_cores, driver_memory, extra_args, master}}` merged over the defaults; `master` (e.g. "
        "`local[1]`, the default of `discard_partial_day`) runs the job inside its task instead of on `spark_cluster`.",
    ),
    VariableSpec("tripclick_spark_conf", "json-object", {}, "Spark conf applied to every job (e.g. S3 settings)."),
    VariableSpec(
        "tripclick_spark_packages",
        "json-object",
        SPARK_PACKAGES,
        "Maven coordinates spark-submit fetches (`--packages`): `kafka` for the jobs that read Kafka, `s3a` for "
        "every job whose lake or landing is `s3a://`. `{}` fetches nothing (the jars must then be on Spark's "
        "classpath already).",
    ),
    VariableSpec(
        "tripclick_spark_driver_host",
        "str",
        "",
        f"Address executors use to reach the driver when `{DRIVER_HOST_ENV}` is not set in the task's environment.",
    ),
    VariableSpec(
        "tripclick_spark_master_ui_port",
        "int",
        8080,
        "Port of the Spark master's web UI on the `spark_cluster` host; preflight reads its `/json/` "
        "status for ALIVE workers and free cores.",
    ),
    VariableSpec("tripclick_spark_driver_port", "int", 41000, "Fixed Spark driver port (open it to the workers)."),
    VariableSpec(
        "tripclick_spark_blockmanager_port", "int", 41001, "Fixed driver block-manager port (open it to the workers)."
    ),
    VariableSpec(
        "tripclick_docker_tls_dir",
        "str",
        "/opt/airflow/secrets/docker-tls",
        "Folder with `ca.pem`, `cert.pem`, `key.pem` for mutual TLS to the Docker daemons.",
    ),
    VariableSpec(
        "tripclick_docker_allow_plain_tcp",
        "bool",
        False,
        "Allow Docker daemons without TLS. Unsafe: anyone on the network can run containers there.",
    ),
    VariableSpec(
        "tripclick_preflight_skip",
        "json-list",
        [],
        "Preflight checks to skip (JSON list): `docker:server0`, `docker:server1`, `spark`, `slack`.",
    ),
    VariableSpec(
        ALERT_EMAIL_TO_VARIABLE,
        "str",
        "",
        "Recipients of the alert emails, comma-separated; email alerts are off while it is unset "
        "(they also need Connection `smtp_alerts`).",
    ),
    VariableSpec(
        "tripclick_task_policy",
        "json-object",
        {},
        "Per-stage retries, retry delays, timeouts, wait offsets and pod resources, merged over "
        "`policy.DEFAULT_POLICY`. Read when the DAG is parsed.",
    ),
)
VARIABLES_BY_NAME = {spec.name: spec for spec in VARIABLES}


def _how_to_set_variable(name: str) -> str:
    return f"set Variable {name!r} (UI, `airflow variables set {name} ...`, or env AIRFLOW_VAR_{name.upper()})"


def _read_variable_raw(name: str) -> str | None:
    # Imported when first needed: scripts that only read the Variable table skip the task runtime.
    from airflow.sdk import Variable

    value = Variable.get(name, default=None)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def read_variables(names: list[str] | tuple[str, ...], problems: list[str]) -> dict[str, Any]:
    """Typed values of the named Variables; appends one line per problem to ``problems``."""
    values: dict[str, Any] = {}
    for name in names:
        spec = VARIABLES_BY_NAME[name]
        raw = _read_variable_raw(name)
        if raw is None:
            if spec.required:
                problems.append(f"Variable {name!r} is not set: {_how_to_set_variable(name)}; {spec.help}")
            values[name] = spec.default
            continue
        try:
            values[name] = spec.parse(raw)
        except ValueError as err:
            problems.append(f"Variable {name!r} {err}: {_how_to_set_variable(name)}")
            values[name] = spec.default
    return values


def require(values: dict[str, Any], name: str, problems: list[str], reason: str) -> Any:
    """A Variable whose default is empty but which this configuration needs."""
    value = values.get(name)
    if value in ("", None):
        problems.append(f"Variable {name!r} is required {reason}: {_how_to_set_variable(name)}")
    return value


def get_connection(conn_id: str, problems: list[str]):
    """The Connection, or None with a problem line that says how to create it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        example = CONNECTION_EXAMPLES.get(conn_id, "<uri>")
        problems.append(
            f"Connection {conn_id!r} is not defined: create it with `airflow connections add {conn_id} "
            f"--conn-uri '{example}'` or env {connection_env_name(conn_id)} (in Kubernetes: the "
            f"connections Secret, see `make secrets`)"
        )
        return None


@dataclass(frozen=True)
class DockerEndpoint:
    server: str
    url: str
    tls_dir: Path | None  # None only when plain TCP is explicitly allowed

    def tls_paths(self) -> dict[str, str] | None:
        if self.tls_dir is None:
            return None
        ca, cert, key = (str(self.tls_dir / name) for name in TLS_FILES)
        return {"ca_cert": ca, "client_cert": cert, "client_key": key}


def docker_endpoint(server: str, values: dict[str, Any], problems: list[str]) -> DockerEndpoint | None:
    """Daemon URL from the server's Connection and the TLS material from the configured folder."""
    conn_id = DOCKER_CONN_IDS[server]
    conn = get_connection(conn_id, problems)
    if conn is None:
        return None
    if not conn.host or not conn.port:
        problems.append(
            f"Connection {conn_id!r} must name host and port, e.g. '{CONNECTION_EXAMPLES[conn_id]}' "
            f"(got host={conn.host!r}, port={conn.port!r})"
        )
        return None
    url = f"tcp://{conn.host}:{conn.port}"
    if values["tripclick_docker_allow_plain_tcp"]:
        return DockerEndpoint(server, url, None)
    tls_dir = Path(values["tripclick_docker_tls_dir"])
    missing = [name for name in TLS_FILES if not os.access(tls_dir / name, os.R_OK)]
    if missing:
        problems.append(
            f"Docker TLS file(s) {', '.join(missing)} missing or unreadable in {tls_dir}: mount the "
            f"'tripclick-docker-tls' Secret there or set Variable 'tripclick_docker_tls_dir' "
            f"(plain TCP needs 'tripclick_docker_allow_plain_tcp'=true, which is unsafe)"
        )
    return DockerEndpoint(server, url, tls_dir)


def raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
