"""Airflow 3 for the demo: LocalExecutor on the stack's PostgreSQL, the repo's dags/ folder, and the
same Connections and Variables as production (their values from values/demo.yaml), given as
AIRFLOW_CONN_* / AIRFLOW_VAR_* environment.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

from . import config, proc, settings, values
from .proc import StackError
from .services import Service, clean_env, http_get, java_home, spark_home

AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
# The chart's hook Job runs this file too (chart/templates/admin-user-job.yaml).
CREATE_ADMIN = config.REPO / "chart" / "files" / "create_admin.py"
SUPERVISE = Path(__file__).with_name("supervise.py")


def airflow_home() -> Path:
    return config.state("airflow")


def env() -> dict[str, str]:
    """Environment of every Airflow process (and so of every task and spark-submit it starts)."""
    s = config.load_secrets()
    e = clean_env()
    home = airflow_home()
    e.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(config.REPO / "dags"),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__FERNET_KEY=s["fernet_key"],
        # The demo runs only what it triggers: no cron runs of its own, DAG active as soon as parsed.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
            f"postgresql+psycopg2://{config.PG_USER_AIRFLOW}:{s['pg_airflow_password']}"
            f"@{config.HOST}:{config.PORTS['postgres']}/{config.PG_DB_AIRFLOW}"
        ),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{config.airflow_url()}/execution/",
        AIRFLOW__API__HOST=config.HOST,
        AIRFLOW__API__PORT=str(config.PORTS["airflow_api"]),
        AIRFLOW__API__BASE_URL=config.airflow_url(),
        AIRFLOW__API__SECRET_KEY=s["api_secret_key"],
        AIRFLOW__API_AUTH__JWT_SECRET=s["jwt_secret"],
        # Production's auth manager: users in the metadata database, the admin created by the chart's own script.
        AIRFLOW__CORE__AUTH_MANAGER=AUTH_MANAGER,
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(config.PORTS["worker_log_server"]),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(config.PORTS["triggerer_log_server"]),
        # How often the dag-processor lists the DAG folder: a new or deleted file (a bad commit, its fix) is seen
        # within 20 s; the alerting tests wait for it. Unchanged files are parsed as production's values say.
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="20",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
        # Metrics to the stack's StatsD capture, so the e2e layer sees what a run really emits.
        AIRFLOW__METRICS__STATSD_ON="True",
        AIRFLOW__METRICS__STATSD_HOST=config.HOST,
        AIRFLOW__METRICS__STATSD_PORT=str(config.PORTS["statsd"]),
        AIRFLOW__METRICS__STATSD_PREFIX="airflow",
        # Spark client mode: the driver runs in the task process, on loopback, with the venv's Python.
        JAVA_HOME=java_home(),
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP=config.HOST,
        PYSPARK_PYTHON=str(config.VENV_BIN / "python"),
        PYSPARK_DRIVER_PYTHON=str(config.VENV_BIN / "python"),
        PGPASSFILE=str(config.state("pg", "pgpass")),
        # The triggerer imports the deadline's callback (tripclick.deadline) by its dotted path; Airflow puts
        # the DAG folder on sys.path only where it parses or runs DAG files.
        PYTHONPATH=str(config.REPO / "dags"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    # Variables, Connections and the demo's own Airflow settings (the task token's lifetime) from values/demo.yaml.
    e.update(settings.env())
    return e


def env_fingerprint(e: dict[str, str]) -> str:
    keys = sorted(k for k in e if k.startswith("AIRFLOW"))
    return hashlib.sha256(json.dumps([(k, e[k]) for k in keys]).encode()).hexdigest()[:16]


def ensure_db(e: dict[str, str]) -> None:
    """`airflow db migrate` once per Airflow and FAB version and database, then the admin user if missing."""
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    marker = home / f".migrated-{version('apache-airflow-core')}-fab-{version('apache-airflow-providers-fab')}"
    if not marker.exists():
        migrate(e)
        marker.write_text("ok\n")
    admin_marker = home / f".admin-{config.ADMIN_USER}"
    if not admin_marker.exists():
        create_admin(e)
        admin_marker.write_text("ok\n")


def create_admin(e: dict[str, str]) -> None:
    """The UI admin with the generated password, by the script the chart's hook Job runs (password in the
    environment, not on the command line)."""
    log = proc.log_path("airflow-create-admin")
    admin = {"ADMIN_USERNAME": config.ADMIN_USER, "ADMIN_PASSWORD": config.load_secrets()["admin_password"]}
    r = _run_logged([str(config.VENV_BIN / "python"), str(CREATE_ADMIN)], {**e, **admin}, log, timeout=300)
    if r.returncode:
        raise StackError(f"creating the admin user failed (exit {r.returncode}).\n--- {log} ---\n{proc.tail(log)}")
    print(f"  admin user {config.ADMIN_USER}: {proc.tail(log).strip().splitlines()[-1]}")


def _run_logged(cmd: list[str], environ: dict[str, str], log, timeout: float) -> subprocess.CompletedProcess:
    """A one-off command with its output in `log`, which the error names when it fails."""
    with open(log, "wb") as out:
        return subprocess.run(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)


def migrate(e: dict[str, str]) -> None:
    log = proc.log_path("airflow-db-migrate")
    t0 = time.monotonic()
    r = _run_logged([str(config.VENV_BIN / "airflow"), "db", "migrate"], e, log, timeout=600)
    if r.returncode:
        raise StackError(f"airflow db migrate failed (exit {r.returncode}).\n--- {log} ---\n{proc.tail(log)}")
    print(f"  airflow db migrate: done ({time.monotonic() - t0:.0f}s)")


def health(timeout: float = 3.0) -> dict:
    code, body = http_get(f"{config.airflow_url()}/api/v2/monitor/health", timeout=timeout)
    if code != 200:
        raise StackError(f"api-server health answered {code}")
    return json.loads(body)


class AirflowComponent(Service):
    start_timeout = 120.0

    def __init__(self, component: str, args: list[str], health_key: str | None) -> None:
        self.component = component
        self.name = f"airflow-{component}"
        self.args = args
        self.health_key = health_key
        self.marker = "airflow"

    def pid(self) -> int | None:
        pid = super().pid()
        # The api-server renames its process to "airflow api_server -- ..."
        if pid and self.component.replace("-", "_") not in proc.cmdline(pid).replace("-", "_"):
            return None
        return pid

    def port(self) -> int | None:
        return config.PORTS["airflow_api"] if self.component == "api-server" else None

    def env(self) -> dict[str, str]:
        # The component's own database pool comes from the production values, as the chart gives it.
        return {**env(), **values.component_env(self.component)}

    def launch(self) -> int:
        e = self.env()
        # Under a supervisor that starts the component again when it exits, as the kubelet would: the scheduler
        # and the triggerer exit when the metadata database goes away for a moment.
        cmd = [
            str(config.VENV_BIN / "python"),
            str(SUPERVISE),
            self.name,
            "--",
            str(config.VENV_BIN / "airflow"),
            self.component,
            *self.args,
        ]
        pid = proc.start(self.name, cmd, env=e, cwd=airflow_home())
        (proc.run_dir() / f"{self.name}.env").write_text(env_fingerprint(e))
        return pid

    def stale(self) -> bool:
        f = proc.run_dir() / f"{self.name}.env"
        return not f.exists() or f.read_text() != env_fingerprint(self.env())

    def up(self) -> str:
        if self.pid() and self.stale():
            print(f"  {self.name}: configuration changed; restarting")
            self.down()
        return super().up()

    def healthy(self) -> bool:
        h = health()
        if self.health_key is None:
            return h.get("metadatabase", {}).get("status") == "healthy"
        return h.get(self.health_key, {}).get("status") == "healthy"

    def describe(self) -> str:
        if self.component == "api-server":
            return config.airflow_url()
        return ""


def components() -> list[AirflowComponent]:
    return [
        AirflowComponent(
            "api-server",
            ["--host", config.HOST, "--port", str(config.PORTS["airflow_api"]), "--workers", values.api_workers()],
            None,
        ),
        # The scheduler and triggerer log servers bind 0.0.0.0; LocalExecutor logs are local files anyway.
        AirflowComponent("scheduler", ["--skip-serve-logs"], "scheduler"),
        AirflowComponent("dag-processor", [], "dag_processor"),
        AirflowComponent("triggerer", ["--skip-serve-logs"], "triggerer"),
    ]
