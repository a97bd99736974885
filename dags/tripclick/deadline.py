"""The day's deadline: the gold marts not done by scheduled time + policy's gold_deadline_s (4 h) sends one
late message to Slack and email, naming the run, the stages not done yet and how late it is.

Airflow's DeadlineAlert measures the deadline from the run's logical date and, when it passes, runs
``gold_late`` in the triggerer with a small context (the run as the REST API shows it, and the
deadline). Airflow drops the deadline of a run that succeeded in time, but not of one that failed, and it
creates one for every run, a backfill of an old date included, whose deadline has passed before it
starts: ``skip_reason`` keeps both from sending a late message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tripclick.notify import SUMMARY_STAGES, format_duration, notify_all

log = logging.getLogger(__name__)

_ENDED = ("success", "failed")


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def skip_reason(dag_run: dict[str, Any], deadline: datetime) -> str | None:
    """Why no late message is due for this run, or None when it is."""
    if dag_run.get("state") in _ENDED or dag_run.get("end_date"):
        return f"run {dag_run.get('dag_run_id')} already ended ({dag_run.get('state')})"
    created = _time(dag_run.get("queued_at")) or _time(dag_run.get("start_date"))
    if created is not None and created >= deadline:
        return (
            f"run {dag_run.get('dag_run_id')} was queued at {created.isoformat()}, after its deadline "
            f"{deadline.isoformat()}: a backfill or rerun of an old date is not late"
        )
    return None


def late_message(
    dag_id: str, run_id: str, day: str, deadline: datetime, now: datetime, states: dict[str, str | None]
) -> str:
    """One message: the run, how late, and each stage that is not done with its state."""
    not_done = [
        f"{stage}: {states.get(stage) or 'not started'}" for stage in SUMMARY_STAGES if states.get(stage) != "success"
    ]
    late = max((now - deadline).total_seconds(), 0)
    return (
        f":hourglass: *{dag_id}* is late for {day}: the gold marts were not done by "
        f"{deadline.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({format_duration(late)} late)\n"
        f"run: {run_id}\n"
        "not done: " + ("; ".join(not_done) if not_done else "none (the run is finishing)")
    )


def _task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=list(SUMMARY_STAGES), run_ids=[run_id])
    return states.get(run_id, {})


async def gold_late(context: dict[str, Any] | None = None, **_: Any) -> str | None:
    """The DeadlineAlert's callback (runs in the triggerer). Never raises: a failed message is only logged."""
    try:
        from asgiref.sync import sync_to_async

        dag_run = (context or {}).get("dag_run") or {}
        deadline = _time(((context or {}).get("deadline") or {}).get("deadline_time"))
        dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id")
        reason = skip_reason(dag_run, deadline)
        if reason:
            log.info("no late message: %s", reason)
            return None
        try:
            states = await sync_to_async(_task_states)(dag_id, run_id)
        except Exception:  # noqa: BLE001 - the message is still due without the stages' states
            log.exception("the stages' states of run %s could not be read; the late message goes without them", run_id)
            states = {}
        scheduled = _time(dag_run.get("logical_date")) or _time(dag_run.get("run_after"))
        text = late_message(
            dag_id, run_id, scheduled.astimezone(UTC).date().isoformat(), deadline, datetime.now(UTC), states
        )
        await sync_to_async(notify_all)(text)
        return text
    except Exception:  # noqa: BLE001 - a deadline message must never take the triggerer's callback down
        log.exception("the late message could not be built or sent")
        return None
