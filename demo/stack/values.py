"""The production overlay (values/base.yaml) as the local stack's source for the settings both must share.

Only what does not depend on Kubernetes, S3 or the token lifetimes the demo shortens on purpose is taken:
the metadata database pool of each component (the chart's `config.database` for every Airflow pod, then a
component's own `env` entries, which override it as the chart's env overrides airflow.cfg), how often the
dag-processor parses an unchanged file (`config.dag_processor`) and the api-server's worker count
(`config.api.workers`).
"""

from __future__ import annotations

from functools import cache
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


@cache
def airflow_values() -> dict[str, Any]:
    with open(BASE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["airflow"]


def component_env(component: str) -> dict[str, str]:
    """AIRFLOW__DATABASE__* and AIRFLOW__DAG_PROCESSOR__* for one component, as the chart gives them to that
    component's pod."""
    values = airflow_values()
    env = {
        f"AIRFLOW__{section.upper()}__{key.upper()}": str(value)
        for section in SHARED_CONFIG_SECTIONS
        for key, value in (values.get("config", {}).get(section) or {}).items()
    }
    for item in values.get(CHART_SECTIONS[component], {}).get("env") or []:
        if item["name"].startswith(SHARED_ENV_PREFIX):
            env[item["name"]] = str(item["value"])
    return env


def api_workers() -> str:
    return str(airflow_values().get("config", {}).get("api", {}).get("workers", 1))
