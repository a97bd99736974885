"""What a task needs to know about the run it belongs to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def scheduled_time(context: Any) -> datetime:
    """The run's scheduled time: its logical date, or when it was due for a run without one."""
    dag_run = context["dag_run"]
    moment = dag_run.logical_date or dag_run.run_after
    return moment.astimezone(UTC)


def event_date(context: Any) -> str:
    """The day of logs this run processes: the UTC date of its scheduled time (15:00 UTC = 00:00 KST)."""
    return scheduled_time(context).date().isoformat()


def wait_target_template(offset_seconds: int) -> str:
    """Jinja for "scheduled time + offset", so a rerun or backfill of an old date does not wait."""
    return (
        "{{ ((dag_run.logical_date or dag_run.run_after)"
        f" + macros.timedelta(seconds={offset_seconds})).isoformat() }}}}"
    )


def show_in_ui(task: Any, extra_fields: tuple[str, ...] = ()) -> None:
    """Let the UI's rendered view show what the task really runs, as a pre_execute hook filled it in.

    Airflow records the rendered template fields before pre_execute; the flag makes it record them
    again when the task ends, whatever its state. ``extra_fields`` adds attributes the provider does
    not template (the Docker daemon's URL) to that record only.
    """
    task.template_fields = (*type(task).template_fields, *extra_fields)
    task.overwrite_rtif_after_execution = True
