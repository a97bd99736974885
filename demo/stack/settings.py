"""The demo's Airflow Variables, Connections and settings: values/demo.yaml with this machine filled in.

The file's header lists the placeholders. A string that is one placeholder alone takes the value itself
(a port stays a number); within a longer string it is written out. A name not listed is an error that
names it, so a typo fails the stack's start instead of reaching a task.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import yaml

from . import config
from .proc import StackError

VALUES = config.REPO / "values" / "demo.yaml"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def placeholders() -> dict[str, Any]:
    """What each placeholder stands for on this machine (ports shifted, state folder as configured)."""
    return {
        "host": config.HOST,
        "state": str(config.STATE),
        "repo": str(config.REPO),
        "slack_url": config.slack_url(),
        "gold_dsn": config.gold_dsn(),
        **{f"port.{name}": port for name, port in config.PORTS.items()},
    }


def fill(value: Any, known: dict[str, Any], where: str = "") -> Any:
    """`value` with every placeholder in its strings replaced; StackError naming the first unknown one."""
    if isinstance(value, dict):
        return {key: fill(item, known, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, known, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    for name in _PLACEHOLDER.findall(value):
        if name not in known:
            raise StackError(
                f"{VALUES.name}: {where}: unknown placeholder {{{name}}} (known: "
                f"{', '.join('{' + k + '}' for k in sorted(known))})"
            )
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return known[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: str(known[m.group(1)]), value)


@cache
def _filled() -> dict[str, Any]:
    with open(VALUES, encoding="utf-8") as handle:
        return fill(yaml.safe_load(handle), placeholders())


def table() -> dict[str, Any]:
    """values/demo.yaml, filled in (a copy: a caller may change it freely)."""
    return copy.deepcopy(_filled())


def variables() -> dict[str, Any]:
    """The Variables, typed as in the file (mappings and lists stay Python objects)."""
    return table()["tripclick"]["variables"]


def connections() -> dict[str, Any]:
    """The Connections by id: a URI, or a mapping in Airflow's JSON form."""
    return table()["connections"]


def producer_ref() -> str:
    """The producer image the DAG runs, `repository:tag`: the one the stack builds."""
    v = variables()
    return f"{v['tripclick_producer_image']}:{v['tripclick_producer_tag']}"


def task_policy() -> dict[str, Any]:
    return variables()["tripclick_task_policy"]


def execution_token_seconds() -> int:
    return int(table()["airflow"]["config"]["execution_api"]["jwt_expiration_time"])


def docker_url(server: str) -> str:
    """The Docker daemon standing for `server`: the address its Connection gives the DAG, where it listens."""
    return connections()[f"docker_{server}"]


def env_value(value: Any) -> str:
    """How Airflow gets a value from the environment: mappings, lists and booleans as JSON (the chart's
    Variables ConfigMap stores them so), anything else as its text."""
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value)
    return str(value)


def env() -> dict[str, str]:
    """AIRFLOW_VAR_*, AIRFLOW_CONN_* and AIRFLOW__<SECTION>__<KEY> for every Airflow process of the stack."""
    e = {f"AIRFLOW_VAR_{name.upper()}": env_value(value) for name, value in variables().items()}
    e.update({f"AIRFLOW_CONN_{conn_id.upper()}": env_value(value) for conn_id, value in connections().items()})
    for section, options in table()["airflow"]["config"].items():
        e.update({f"AIRFLOW__{section.upper()}__{key.upper()}": env_value(v) for key, v in options.items()})
    return e
