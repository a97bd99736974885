"""discard_partial_day: after a failed day, delete the lake partitions that day's tasks left half-written.

The stream publishes what has landed as it goes, and batch_to_bronze writes bronze before it completes
silver, so a day that fails midway (a producer that hangs or hits a full disk, a Spark job that dies)
can leave a partial silver or bronze partition. This task runs once those stages are done, whatever
their states, and decides in its pre_execute hook:

- every producer, the stream and batch_to_bronze succeeded: the day is whole, the task is skipped;
- otherwise, silver of the day and its streaming checkpoint go when the stream ran (it wrote what had
  landed) or batch_to_bronze failed (it may have been rewriting silver); bronze of the day goes too when
  batch_to_bronze failed;
- nothing of this run wrote to the lake (e.g. preflight failed): skipped, an earlier run's data stays.

Gold needs nothing: etl_to_gold replaces a day in one transaction and runs only after bronze succeeded.
A plain rerun of the date then writes every layer again.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from tripclick import config
from tripclick.run_context import event_date
from tripclick.spark_jobs import apply_spec, resolve_spark_job

log = logging.getLogger(__name__)

TASK_ID = "discard_partial_day"
PRODUCERS = tuple(f"producer_{server}" for server in config.WEB_SERVERS)
STREAM, BRONZE = "streaming_to_silver", "batch_to_bronze"
# The stages whose output this task may discard: its upstream tasks.
WATCHED = (*PRODUCERS, STREAM, BRONZE)
# A task in one of these states started, so it may have written.
RAN = ("success", "failed")


def layers_to_discard(states: dict[str, str | None]) -> tuple[str, ...]:
    """The layers of the day to delete, given the watched stages' states; () when nothing is to be deleted."""
    if all(states.get(task) == "success" for task in WATCHED):
        return ()
    layers = []
    if states.get(STREAM) in RAN or states.get(BRONZE) == "failed":
        layers.append("silver")
    if states.get(BRONZE) == "failed":
        layers.append("bronze")
    return tuple(layers)


def _checkpoint_args(day: str) -> list[str]:
    """The stream's own --checkpoint-path when tripclick_spark_jobs gives it one (else the app's default)."""
    problems: list[str] = []
    jobs = config.read_variables(["tripclick_spark_jobs"], problems)["tripclick_spark_jobs"]
    config.raise_if(problems)
    extra = [str(arg) for arg in (jobs.get(STREAM) or {}).get("extra_args", [])]
    if "--checkpoint-path" in extra[:-1]:
        return ["--checkpoint-path", extra[extra.index("--checkpoint-path") + 1]]
    return []


def bind_discard(context: Any) -> None:
    """pre_execute hook: skip on a whole day, else bind the app to the layers the failed day left partial."""
    ti = context["ti"]
    day = event_date(context)
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(WATCHED), run_ids=[ti.run_id])
    states = found.get(ti.run_id, {})
    summary = ", ".join(f"{task} {states.get(task)}" for task in WATCHED)
    layers = layers_to_discard(states)
    if not layers:
        whole = all(states.get(task) == "success" for task in WATCHED)
        reason = "the day is whole" if whole else "no task of this run wrote to the lake"
        raise AirflowSkipException(f"nothing to discard for {day}: {reason} ({summary})")
    log.warning("day %s did not complete (%s): discarding %s", day, summary, " and ".join(layers))
    spec = resolve_spark_job(TASK_ID, day)
    args = [*spec.application_args]
    for layer in layers:
        args += ["--layer", layer]
    if "silver" in layers:
        args += _checkpoint_args(day)
    apply_spec(context["task"], dataclasses.replace(spec, application_args=args))
