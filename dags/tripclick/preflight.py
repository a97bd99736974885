"""Preflight: every remote dependency of the run, checked before anything starts.

All problems are gathered and raised together, so one failed run tells the operator everything
that is wrong. Single checks can be turned off with Variable ``tripclick_preflight_skip``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from tripclick import config, producers, spark_jobs
from tripclick.run_context import event_date

log = logging.getLogger(__name__)

CHECKS = (*(f"docker:{server}" for server in config.WEB_SERVERS), "spark", "slack")
DOCKER_TIMEOUT_S = 15
SPARK_TIMEOUT_S = 10


class PreflightError(RuntimeError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("preflight found problems:\n" + "\n".join(f"  - {p}" for p in problems))


def check_docker(server: str, day: str, problems: list[str]) -> None:
    """The daemon answers over (mutual) TLS and already has the producer image."""
    try:
        endpoint, spec = producers.resolve_producer(server, day)
    except config.ConfigError as err:
        problems.extend(f"{server}: {p}" for p in err.problems)
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
        problems.append(
            f"{server}: image {spec.image} is not on the Docker daemon at {endpoint.url}: "
            f"load it there (`docker load` / `docker pull`) or set Variable 'tripclick_producer_tag'"
        )
    except (DockerException, OSError) as err:
        how = "is it running, is the port open, does it trust our client certificate?" if tls else "is it running?"
        over = "TLS" if tls else "TCP"
        problems.append(f"{server}: Docker daemon at {endpoint.url} did not answer over {over} ({how}): {err}")
    finally:
        if client is not None:
            client.close()


def check_spark(day: str, problems: list[str]) -> None:
    """The Spark configuration is complete and the master accepts TCP connections."""
    spark_problems: list[str] = []
    values = config.read_variables(spark_jobs.SPARK_VARIABLES, spark_problems)
    for job in config.SPARK_JOBS:
        spark_jobs.spark_job(job, day, values, spark_problems, in_driver=False)
    conn = config.get_connection(config.SPARK_CONN_ID, spark_problems)
    problems.extend(f"spark: {p}" for p in dict.fromkeys(spark_problems))
    if conn is None:
        return
    if not conn.host or not conn.port:
        problems.append(
            f"spark: Connection 'spark_cluster' must name host and port, e.g. "
            f"'{config.CONNECTION_EXAMPLES['spark_cluster']}'"
        )
        return
    host = conn.host.split("://")[-1]
    try:
        with socket.create_connection((host, conn.port), timeout=SPARK_TIMEOUT_S):
            log.info("spark: master at %s:%s accepts connections", host, conn.port)
    except OSError as err:
        problems.append(f"spark: Spark master at {host}:{conn.port} does not accept connections: {err}")


def check_slack(problems: list[str]) -> None:
    conn_problems: list[str] = []
    config.get_connection(config.SLACK_CONN_ID, conn_problems)
    problems.extend(f"slack: {p}" for p in conn_problems)


def run_preflight(**context: Any) -> list[str]:
    """Run every enabled check for the run's date; raises PreflightError listing all problems."""
    day = event_date(context)
    problems: list[str] = []
    skip = config.read_variables(("tripclick_preflight_skip",), problems)["tripclick_preflight_skip"]
    unknown = sorted(set(map(str, skip)) - set(CHECKS))
    if unknown:
        problems.append(f"Variable 'tripclick_preflight_skip' names unknown checks {unknown}: use {list(CHECKS)}")
    ran = []
    for check in CHECKS:
        if check in skip:
            log.warning("preflight check %s skipped by Variable 'tripclick_preflight_skip'", check)
            continue
        ran.append(check)
        if check.startswith("docker:"):
            check_docker(check.split(":", 1)[1], day, problems)
        elif check == "spark":
            check_spark(day, problems)
        elif check == "slack":
            check_slack(problems)
    if problems:
        raise PreflightError(problems)
    log.info("preflight passed for %s: %s", day, ", ".join(ran))
    return ran
