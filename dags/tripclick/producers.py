"""The producer containers: what runs on each web server's Docker daemon, resolved when the task starts.

The DockerOperator is built at parse time with nothing but its task id; ``bind_producer`` fills
in the daemon URL, TLS files, image, command, environment and mounts from the Connections and
Variables just before it executes, so parsing needs neither.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tripclick import config
from tripclick.notify import record_stage_timing
from tripclick.run_context import event_date, show_in_ui

log = logging.getLogger(__name__)

PRODUCER_VARIABLES = (
    "tripclick_producer_image",
    "tripclick_producer_tag",
    "tripclick_producer_mode",
    "tripclick_producer_extra_env",
    "tripclick_data_dir_server0",
    "tripclick_data_dir_server1",
    "tripclick_transport",
    "tripclick_kafka_brokers",
    "tripclick_kafka_topic",
    "tripclick_landing_dir",
    "tripclick_docker_tls_dir",
    "tripclick_docker_allow_plain_tcp",
)


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: list[str]
    environment: dict[str, str]
    mounts: list[dict[str, Any]]
    labels: dict[str, str] = field(default_factory=dict)


def _bind_mount(source: str, target: str, read_only: bool) -> dict[str, Any]:
    # The Docker Engine API's Mount object; docker.types.Mount is this same dict.
    return {"Target": target, "Source": source, "Type": "bind", "ReadOnly": read_only}


def producer_container(server: str, day: str, values: dict[str, Any], problems: list[str]) -> ContainerSpec:
    """The container contract of BRIEF section 2 for one server and one day."""
    environment: dict[str, str] = {}
    mounts = [_bind_mount(values[f"tripclick_data_dir_{server}"], config.PRODUCER_DATA_MOUNT, read_only=True)]
    if values["tripclick_transport"] == "kafka":
        environment["KAFKA_BROKERS"] = config.require(
            values, "tripclick_kafka_brokers", problems, "when tripclick_transport is 'kafka'"
        )
    else:
        landing = config.require(values, "tripclick_landing_dir", problems, "when tripclick_transport is 'landing'")
        mounts.append(_bind_mount(landing or "", config.PRODUCER_LANDING_MOUNT, read_only=False))
        environment["LANDING_DIR"] = config.PRODUCER_LANDING_MOUNT
    for key, value in values["tripclick_producer_extra_env"].items():
        if not isinstance(value, str):
            problems.append(
                f"Variable 'tripclick_producer_extra_env' value for {key!r} must be a string, got {value!r}"
            )
            continue
        environment[key] = value
    return ContainerSpec(
        image=f"{values['tripclick_producer_image']}:{values['tripclick_producer_tag']}",
        command=[
            "--file",
            f"{config.PRODUCER_DATA_MOUNT}/date={day}/events.json",
            "--mode",
            values["tripclick_producer_mode"],
            "--topic",
            values["tripclick_kafka_topic"],
        ],
        environment=environment,
        mounts=mounts,
        labels={"org.tripclick.server": server, "org.tripclick.event-date": day},
    )


def resolve_producer(server: str, day: str) -> tuple[config.DockerEndpoint, ContainerSpec]:
    """Daemon endpoint and container spec, or ConfigError listing every problem."""
    problems: list[str] = []
    values = config.read_variables(PRODUCER_VARIABLES, problems)
    endpoint = config.docker_endpoint(server, values, problems)
    spec = producer_container(server, day, values, problems)
    config.raise_if(problems)
    assert endpoint is not None
    return endpoint, spec


def bind_producer(server: str, context: Any) -> None:
    """pre_execute hook of ``producer_<server>``: point the DockerOperator at the day's container."""
    task = context["task"]
    day = event_date(context)
    endpoint, spec = resolve_producer(server, day)
    task.docker_url = endpoint.url
    tls = endpoint.tls_paths()
    if tls is None:
        log.warning(
            "Docker daemon %s at %s is reached over PLAIN TCP (tripclick_docker_allow_plain_tcp=true): "
            "anyone who can reach that port can run containers as root on %s. Enable TLS on 2376.",
            config.DOCKER_CONN_IDS[server],
            endpoint.url,
            server,
        )
    else:
        task.tls_ca_cert = tls["ca_cert"]
        task.tls_client_cert = tls["client_cert"]
        task.tls_client_key = tls["client_key"]
        task.tls_verify = True
    task.image = spec.image
    task.command = spec.command
    task.environment = spec.environment
    task.mounts = spec.mounts
    task.labels = spec.labels
    ti = context["ti"]
    # The try number keeps a failed attempt's container (kept for inspection) from blocking the retry.
    task.container_name = f"tripclick-producer-{server}-{day}-try{ti.try_number}"
    show_in_ui(task, extra_fields=("docker_url",))
    log.info("Producer %s: %s on %s, command %s", server, spec.image, endpoint.url, " ".join(spec.command))


def finish_producer(context: Any, result: Any = None) -> None:
    """post_execute hook of ``producer_<server>``: the try succeeded, so its container goes.

    Only a succeeded try reaches this hook: a failed try's container stays on its daemon, named
    after its try, for ``docker logs`` and ``docker inspect``.
    """
    record_stage_timing(context, result)
    task = context["task"]
    container = getattr(task, "container", None)
    if container:
        task.cli.remove_container(container["Id"])
        log.info("Removed container %s of the succeeded try", task.container_name)
