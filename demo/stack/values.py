"""The production overlay (values/base.yaml) as the local stack's source for the settings both must share.

Only what does not depend on Kubernetes, S3 or the token lifetimes the demo shortens on purpose is taken:
the metadata database pool of each component (the chart's `config.database` for every Airflow pod, then a
component's own `env` entries, which override it as the chart's env overrides airflow.cfg), how often the
dag-processor parses an unchanged file (`config.dag_processor`) and the api-server's worker count
(`config.api.workers`).

`setting` is the one definition of what a component's process reads for an option: its env, else
airflow.cfg, else Airflow's own default. tests/chart/test_db_pool.py sizes the pools with it, from the
overlays and from the rendered release alike.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from . import config

BASE = config.REPO / "values" / "base.yaml"
# Local component name -> its section in the official chart's values.
CHART_SECTIONS = {
    "api-server": "apiServer",
    "scheduler": "scheduler",
    "dag-processor": "dagProcessor",
    "triggerer": "triggerer",
}
SHARED_CONFIG_SECTIONS = ("database", "dag_processor")
SHARED_ENV_PREFIX = "AIRFLOW__DATABASE__"
# What decides how many metadata-database connections a component can hold: name -> (section, option).
POOL_SETTINGS = {
    "sql_alchemy_pool_size": ("database", "sql_alchemy_pool_size"),
    "sql_alchemy_max_overflow": ("database", "sql_alchemy_max_overflow"),
    "sql_alchemy_pool_pre_ping": ("database", "sql_alchemy_pool_pre_ping"),
    "sql_alchemy_pool_recycle": ("database", "sql_alchemy_pool_recycle"),
    "api_workers": ("api", "workers"),
}


@cache
def airflow_values() -> dict[str, Any]:
    with open(BASE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["airflow"]


@cache
def airflow_options() -> dict[str, Any]:
    """The installed Airflow's own option reference (airflow/config_templates/config.yml), read as a file:
    importing Airflow would set up its configuration and logging inside the stack's process."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or spec.origin is None:
        raise RuntimeError("Airflow is not installed in this interpreter's environment")
    path = Path(spec.origin).parent / "config_templates" / "config.yml"
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def env_name(section: str, option: str) -> str:
    return f"AIRFLOW__{section.upper()}__{option.upper()}"


def setting(cfg: Mapping[str, Mapping[str, Any]], env: Mapping[str, str], section: str, option: str) -> str:
    """What a component's process reads for one option: its env, else airflow.cfg, else Airflow's default."""
    if env_name(section, option) in env:
        return str(env[env_name(section, option)])
    if option in (cfg.get(section) or {}):
        return str(cfg[section][option])
    return str(airflow_options()[section]["options"][option]["default"])


def pool_settings(cfg: Mapping[str, Mapping[str, Any]], env: Mapping[str, str]) -> dict[str, str]:
    """POOL_SETTINGS as one component's process reads them, from its airflow.cfg and its env."""
    return {name: setting(cfg, env, section, option) for name, (section, option) in POOL_SETTINGS.items()}


def chart_env(values: Mapping[str, Any], component: str) -> dict[str, str]:
    """A component's `env` entries in the official chart's values (the overlays' `airflow:`)."""
    return {item["name"]: str(item["value"]) for item in values.get(CHART_SECTIONS[component], {}).get("env") or []}


def component_pool(component: str, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """One component's POOL_SETTINGS as the chart gives them to its pod (values: the overlays' `airflow:`,
    values/base.yaml's by default)."""
    values = airflow_values() if values is None else values
    return pool_settings(values.get("config") or {}, chart_env(values, component))


def component_env(component: str) -> dict[str, str]:
    """AIRFLOW__DATABASE__* and AIRFLOW__DAG_PROCESSOR__* for one component, as the chart gives them to that
    component's pod, the pool settings included even where Airflow's default applies."""
    values = airflow_values()
    cfg, env = values.get("config") or {}, chart_env(values, component)
    options = {(section, option) for section in SHARED_CONFIG_SECTIONS for option in cfg.get(section) or {}}
    options |= {tuple(name.lower().split("__", 2)[1:]) for name in env if name.startswith(SHARED_ENV_PREFIX)}
    options |= {pair for pair in POOL_SETTINGS.values() if pair[0] in SHARED_CONFIG_SECTIONS}
    return {env_name(section, option): setting(cfg, env, section, option) for section, option in sorted(options)}


def api_workers() -> str:
    return component_pool("api-server")["api_workers"]
