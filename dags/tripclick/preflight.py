"""Preflight: every remote dependency of the run, checked before anything starts.

All problems are gathered and raised together, so one failed run tells the operator everything
that is wrong. A configuration problem (a missing Connection, a malformed Variable) fails the task
at once; a service that is not ready (a daemon restarting, no Spark worker yet) is retried.
Single checks can be turned off with Variable ``tripclick_preflight_skip``.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tripclick import config, producers, spark_jobs
from tripclick.run_context import event_date

log = logging.getLogger(__name__)

CHECKS = (*(f"docker:{server}" for server in config.WEB_SERVERS), "spark", "slack")
DOCKER_TIMEOUT_S = 15
SPARK_TIMEOUT_S = 10
# The job that starts first, beside the producers: the cluster must have its cores free at 15:00.
FIRST_SPARK_JOB = "streaming_to_silver"


class PreflightError(RuntimeError):
    """A dependency is not ready; it may be by the next try, so the task is retried."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("preflight found problems:\n" + "\n".join(f"  - {p}" for p in problems))


class PreflightConfigError(config.ConfigError):
    """At least one problem is configuration, which no retry can fix: the task fails at once."""

    def __init__(self, problems: list[str]):
        super().__init__(problems)
        self.args = ("preflight found problems, configuration among them:\n" + "\n".join(f"  - {p}" for p in problems),)


@dataclass
class Findings:
    """Problems in the order found; which of them are configuration decides whether to retry."""

    problems: list[str] = field(default_factory=list)
    configuration: bool = False

    def service(self, problem: str) -> None:
        self.problems.append(problem)

    def misconfigured(self, problems: list[str]) -> None:
        if problems:
            self.problems.extend(problems)
            self.configuration = True


def check_docker(server: str, day: str, found: Findings) -> None:
    """The daemon answers over (mutual) TLS and already has the producer image."""
    try:
        endpoint, spec = producers.resolve_producer(server, day)
    except config.ConfigError as err:
        found.misconfigured([f"{server}: {p}" for p in err.problems])
        return
    import docker
    from docker.errors import DockerException, ImageNotFound

    tls = endpoint.tls_paths()
    tls_config = (
        docker.tls.TLSConfig(client_cert=(tls["client_cert"], tls["client_key"]), ca_cert=tls["ca_cert"], verify=True)
        if tls
        else False
    )
    client = None
    try:
        client = docker.APIClient(base_url=endpoint.url, tls=tls_config, timeout=DOCKER_TIMEOUT_S, version="auto")
        version = client.version()
        log.info("%s: Docker %s at %s", server, version.get("Version"), endpoint.url)
        client.inspect_image(spec.image)
    except ImageNotFound:
        # Not a configuration error: the image may be on its way (a deploy loading it right now).
        found.service(
            f"{server}: image {spec.image} is not on the Docker daemon at {endpoint.url}: "
            f"load it there (`docker load` / `docker pull`) or set Variable 'tripclick_producer_tag'"
        )
    except (DockerException, OSError) as err:
        how = "is it running, is the port open, does it trust our client certificate?" if tls else "is it running?"
        over = "TLS" if tls else "TCP"
        found.service(f"{server}: Docker daemon at {endpoint.url} did not answer over {over} ({how}): {err}")
    finally:
        if client is not None:
            client.close()


def master_status(host: str, ui_port: int) -> dict[str, Any]:
    """The standalone master's own status document (its web UI's /json/ endpoint)."""
    url = f"http://{host}:{ui_port}/json/"
    with urllib.request.urlopen(url, timeout=SPARK_TIMEOUT_S) as response:  # noqa: S310 - http URL built above
        return json.load(response)


def spark_capacity_problem(status: dict[str, Any], master: str, needed_cores: int) -> str | None:
    """None when the master is ALIVE and its ALIVE workers have ``needed_cores`` free; else what is missing."""
    if status.get("status") != "ALIVE":
        # A standby or recovering master of an HA pair takes no applications.
        return f"spark: Spark master at {master} is {status.get('status')}, not ALIVE: it takes no applications now"
    workers = status.get("workers") or []
    alive = [w for w in workers if w.get("state") == "ALIVE"]
    if not alive:
        states = ", ".join(sorted({str(w.get("state")) for w in workers})) or "none registered"
        return (
            f"spark: Spark master at {master} has no ALIVE worker (workers: {states}): start a worker "
            "or check that it can reach the master"
        )
    free = sum(int(w.get("cores", 0)) - int(w.get("coresused", 0)) for w in alive)
    if free < needed_cores:
        return (
            f"spark: Spark workers at {master} have {free} free core(s) on {len(alive)} ALIVE worker(s), "
            f"{FIRST_SPARK_JOB} needs {needed_cores}: wait for the running applications to end, add a "
            f"worker, or lower Variable 'tripclick_spark_jobs'.{FIRST_SPARK_JOB}.total_executor_cores"
        )
    return None


def check_spark(day: str, found: Findings) -> None:
    """The Spark configuration is complete, the master answers, and it has a worker with free cores."""
    spark_problems: list[str] = []
    values = config.read_variables((*spark_jobs.SPARK_VARIABLES, "tripclick_spark_master_ui_port"), spark_problems)
    first_job = None
    for job in config.SPARK_JOBS:
        spec = spark_jobs.spark_job(job, day, values, spark_problems, in_driver=False)
        first_job = spec if job == FIRST_SPARK_JOB else first_job
    conn = config.get_connection(config.SPARK_CONN_ID, spark_problems)
    found.misconfigured([f"spark: {p}" for p in dict.fromkeys(spark_problems)])
    if conn is None:
        return
    if not conn.host or not conn.port:
        found.misconfigured(
            [
                "spark: Connection 'spark_cluster' must name host and port, e.g. "
                f"'{config.CONNECTION_EXAMPLES['spark_cluster']}'"
            ]
        )
        return
    host = conn.host.split("://")[-1]
    master = f"{host}:{conn.port}"
    try:
        with socket.create_connection((host, conn.port), timeout=SPARK_TIMEOUT_S):
            log.info("spark: master at %s accepts connections", master)
    except OSError as err:
        found.service(f"spark: Spark master at {master} does not accept connections: {err}")
        return
    ui_port = values["tripclick_spark_master_ui_port"]
    try:
        status = master_status(host, ui_port)
    except (OSError, ValueError) as err:
        found.service(
            f"spark: Spark master status at http://{host}:{ui_port}/json/ did not answer ({err}): is the "
            f"master's web UI on that port (Variable 'tripclick_spark_master_ui_port') and reachable?"
        )
        return
    needed = int(first_job.conf["spark.cores.max"]) if first_job else 1
    problem = spark_capacity_problem(status, master, needed)
    if problem:
        found.service(problem)
    else:
        log.info(
            "spark: master at %s is %s with ALIVE worker(s) and %s core(s) free", master, status.get("status"), needed
        )


def check_slack(found: Findings) -> None:
    conn_problems: list[str] = []
    config.get_connection(config.SLACK_CONN_ID, conn_problems)
    found.misconfigured([f"slack: {p}" for p in conn_problems])


def run_preflight(**context: Any) -> list[str]:
    """Run every enabled check for the run's date; raises listing all problems found."""
    day = event_date(context)
    found = Findings()
    skip_problems: list[str] = []
    skip = config.read_variables(("tripclick_preflight_skip",), skip_problems)["tripclick_preflight_skip"]
    unknown = sorted(set(map(str, skip)) - set(CHECKS))
    if unknown:
        skip_problems.append(f"Variable 'tripclick_preflight_skip' names unknown checks {unknown}: use {list(CHECKS)}")
    found.misconfigured(skip_problems)
    ran = []
    for check in CHECKS:
        if check in skip:
            log.warning("preflight check %s skipped by Variable 'tripclick_preflight_skip'", check)
            continue
        ran.append(check)
        if check.startswith("docker:"):
            check_docker(check.split(":", 1)[1], day, found)
        elif check == "spark":
            check_spark(day, found)
        elif check == "slack":
            check_slack(found)
    if found.configuration:
        raise PreflightConfigError(found.problems)
    if found.problems:
        raise PreflightError(found.problems)
    log.info("preflight passed for %s: %s", day, ", ".join(ran))
    return ran
