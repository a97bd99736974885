"""Per-stage retries, timeouts, wait offsets and pod sizes: the only configuration read at parse time.

Retries and timeouts are operator arguments, so they must be known when the DAG is built. They
come from one JSON Variable, ``tripclick_task_policy``, merged key by key over ``DEFAULT_POLICY``,
so one lookup per parse (an env var AIRFLOW_VAR_TRIPCLICK_TASK_POLICY answers it without a
database round trip).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tripclick.config import ConfigError

POLICY_VARIABLE = "tripclick_task_policy"

# Sizes: a producer task only drives a remote container (Airflow's task runner alone is ~400 MiB);
# a Spark task hosts the client-mode driver (JVM + Python), which holds the streaming query state.
_SMALL_POD = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "768Mi"}}
_DRIVER_POD = {"requests": {"cpu": "250m", "memory": "1280Mi"}, "limits": {"cpu": "1", "memory": "1536Mi"}}

DEFAULT_POLICY: dict[str, dict[str, Any]] = {
    # Fast checks: retry quickly, a daemon restarting is the common transient cause.
    "preflight": {"retries": 2, "retry_delay_s": 60, "max_retry_delay_s": 300, "timeout_s": 300, "pod": _SMALL_POD},
    # A realtime replay retried midway re-sends events already in Kafka; silver dedups on dedup_key.
    "producer": {
        "retries": 1,
        "retry_delay_s": 120,
        "max_retry_delay_s": 600,
        "timeout_s": 5400,
        "pod": _SMALL_POD,
    },
    "streaming_to_silver": {
        "retries": 1,
        "retry_delay_s": 120,
        "max_retry_delay_s": 600,
        "timeout_s": 6000,
        "pod": _DRIVER_POD,
    },
    "batch_to_bronze": {
        "retries": 2,
        "retry_delay_s": 300,
        "max_retry_delay_s": 1800,
        "timeout_s": 3600,
        "pod": _DRIVER_POD,
    },
    "etl_to_gold": {
        "retries": 2,
        "retry_delay_s": 300,
        "max_retry_delay_s": 1800,
        "timeout_s": 3600,
        "pod": _DRIVER_POD,
    },
    # Deletes a failed day's partial partitions with Spark in local mode (one JVM, driver and executor):
    # the driver's size; it runs once the day's stages are done, never at the 15:00 peak.
    "discard_partial_day": {
        "retries": 2,
        "retry_delay_s": 60,
        "max_retry_delay_s": 300,
        "timeout_s": 900,
        "pod": _DRIVER_POD,
    },
    "notify": {"retries": 0, "retry_delay_s": 60, "max_retry_delay_s": 60, "timeout_s": 120, "pod": _SMALL_POD},
    # Deferrable waits hold no slot; the timeout bounds how long past its target a wait may sit.
    "wait": {"retries": 0, "retry_delay_s": 60, "max_retry_delay_s": 60, "timeout_s": 6 * 3600, "pod": _SMALL_POD},
    # Offsets from the run's scheduled time (15:00 UTC): bronze at 17:00, gold at 18:00; the gold marts
    # are late (one message to Slack and email) if not done by 19:00.
    "offsets": {"batch_to_bronze_s": 2 * 3600, "etl_to_gold_s": 3 * 3600, "gold_deadline_s": 4 * 3600},
}
STAGES = tuple(key for key in DEFAULT_POLICY if key != "offsets")
_INT_KEYS = ("retries", "retry_delay_s", "max_retry_delay_s", "timeout_s")


@dataclass(frozen=True)
class StagePolicy:
    retries: int
    retry_delay: timedelta
    max_retry_delay: timedelta
    execution_timeout: timedelta
    pod: dict[str, Any]

    def operator_kwargs(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": True,
            "max_retry_delay": self.max_retry_delay,
            "execution_timeout": self.execution_timeout,
        }


@dataclass(frozen=True)
class TaskPolicy:
    stages: dict[str, StagePolicy]
    bronze_offset: timedelta
    gold_offset: timedelta
    gold_deadline: timedelta

    def __getitem__(self, stage: str) -> StagePolicy:
        return self.stages[stage]


def _read_override() -> dict[str, Any]:
    from airflow.sdk import Variable

    raw = Variable.get(POLICY_VARIABLE, default=None)
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(
            [f"Variable {POLICY_VARIABLE!r} is not valid JSON ({err.msg} at position {err.pos})"]
        ) from None
    if not isinstance(value, dict):
        raise ConfigError([f"Variable {POLICY_VARIABLE!r} must be a JSON object, got {type(value).__name__}"])
    return value


def merge_policy(override: dict[str, Any]) -> TaskPolicy:
    """Merge an override over the defaults, rejecting unknown stages, keys and wrong types."""
    merged = copy.deepcopy(DEFAULT_POLICY)
    problems: list[str] = []
    for stage, values in override.items():
        if stage not in merged:
            problems.append(f"{POLICY_VARIABLE}: unknown stage {stage!r} (known: {', '.join(merged)})")
            continue
        if not isinstance(values, dict):
            problems.append(f"{POLICY_VARIABLE}.{stage} must be a JSON object")
            continue
        for key, value in values.items():
            if key not in merged[stage]:
                problems.append(f"{POLICY_VARIABLE}.{stage}: unknown key {key!r} (known: {', '.join(merged[stage])})")
            elif key == "pod":
                if not isinstance(value, dict):
                    problems.append(f"{POLICY_VARIABLE}.{stage}.pod must be an object of requests/limits")
                else:
                    merged[stage]["pod"] = value
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{POLICY_VARIABLE}.{stage}.{key} must be a non-negative integer, got {value!r}")
            else:
                merged[stage][key] = value
    if problems:
        raise ConfigError(problems)
    stages = {
        stage: StagePolicy(
            retries=merged[stage]["retries"],
            retry_delay=timedelta(seconds=merged[stage]["retry_delay_s"]),
            max_retry_delay=timedelta(seconds=merged[stage]["max_retry_delay_s"]),
            execution_timeout=timedelta(seconds=merged[stage]["timeout_s"]),
            pod=merged[stage]["pod"],
        )
        for stage in STAGES
    }
    offsets = merged["offsets"]
    return TaskPolicy(
        stages=stages,
        bronze_offset=timedelta(seconds=offsets["batch_to_bronze_s"]),
        gold_offset=timedelta(seconds=offsets["etl_to_gold_s"]),
        gold_deadline=timedelta(seconds=offsets["gold_deadline_s"]),
    )


def load_policy() -> TaskPolicy:
    return merge_policy(_read_override())
