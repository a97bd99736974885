"""Alerts: a message for every failed task (and every retry), a summary when the day is over, good or
bad, and a late message when the gold marts miss the day's deadline. Each goes to Slack and, when
recipients are configured, by email.

A notification that cannot be delivered is logged and swallowed: Slack or the mail server being down
must never fail (or retry) the pipeline it reports on.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import UTC, datetime
from typing import Any

from tripclick import config
from tripclick.policy import POLICY_VARIABLE
from tripclick.run_context import event_date

log = logging.getLogger(__name__)

TIMING_XCOM_KEY = "stage_timing"
MAX_ERROR_LINES = 12
# The stages reported in the summary, in pipeline order.
SUMMARY_STAGES = (
    "preflight",
    "producer_server0",
    "producer_server1",
    "streaming_to_silver",
    "batch_to_bronze",
    "etl_to_gold",
)
# Reported after the stages, but part of the day's outcome only when they fail: discard_partial_day is
# skipped on a whole day, and on a failed day it is the repair, not the problem.
CLEANUP_STAGES = ("discard_partial_day",)
# Slack's markup in the first line, left out of an email's subject.
_SLACK_MARKUP = re.compile(r"^:[a-z_]+:\s*|\*")


def post_to_slack(text: str) -> bool:
    """Send ``text`` to the slack_webhook Connection; False (logged) when it cannot be delivered."""
    try:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        # notify() rather than calling the notifier: the text is final, and an error message quoting
        # Jinja braces must not be rendered as a template.
        SlackWebhookNotifier(slack_webhook_conn_id=config.SLACK_CONN_ID, text=text, timeout=10).notify({})
    except Exception:  # noqa: BLE001 - any delivery failure is reported the same way
        log.exception("Slack notification via Connection %r failed; the pipeline carries on", config.SLACK_CONN_ID)
        return False
    return True


def email_recipients() -> list[str]:
    """The addresses of Variable tripclick_alert_email_to (comma- or space-separated); empty: email is off."""
    problems: list[str] = []
    raw = config.read_variables([config.ALERT_EMAIL_TO_VARIABLE], problems)[config.ALERT_EMAIL_TO_VARIABLE]
    if problems:
        log.error("email alerts are off: %s", "; ".join(problems))
        return []
    return [address for address in re.split(r"[,\s]+", raw or "") if address]


def email_subject(text: str) -> str:
    return _SLACK_MARKUP.sub("", text.splitlines()[0]).strip()


def send_email(text: str) -> bool:
    """Mail ``text`` through the smtp_alerts Connection to the Variable's recipients; False (logged) when email
    is off or the message cannot be delivered."""
    try:
        recipients = email_recipients()
        if not recipients:
            log.info("email alerts are off: Variable %r is not set", config.ALERT_EMAIL_TO_VARIABLE)
            return False
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=recipients,
            smtp_conn_id=config.SMTP_CONN_ID,
            subject=email_subject(text),
            html_content=f"<pre>{html.escape(text)}</pre>",
        ).notify({})
    except Exception:  # noqa: BLE001 - any delivery failure is reported the same way
        log.exception("Email notification via Connection %r failed; the pipeline carries on", config.SMTP_CONN_ID)
        return False
    return True


def notify_all(text: str) -> dict[str, bool]:
    """Every channel, each on its own: one that fails does not keep the message from the others."""
    return {"slack": post_to_slack(text), "email": send_email(text)}


NOT_RETRIED = "not retried: configuration problem; fix it, then clear the task"


# Exit codes of a container's main process that a signal caused (128 + signal number).
_SIGNAL_EXITS = {
    137: "killed by SIGKILL (docker kill, the kernel's out-of-memory killer or the daemon going down)",
    143: "stopped by SIGTERM (docker stop)",
}


def _where(task: Any) -> str | None:
    """The remote thing a task drives, so an alert says where to look."""
    if task is None:
        return None
    if getattr(task, "docker_url", None) and getattr(task, "container_name", None):
        return f"container {task.container_name} on the Docker daemon {task.docker_url}"
    if getattr(task, "application", None) and getattr(task, "name", None):
        return f"Spark application {task.name} ({task.application})"
    return None


def _container_exit(task: Any) -> str | None:
    """What the daemon says ended a failed producer container (it is kept, so it can still be inspected)."""
    container = getattr(task, "container", None)
    cli = getattr(task, "cli", None)
    if not container or cli is None:
        return None
    try:
        state = cli.inspect_container(container["Id"])["State"]
    except Exception:  # noqa: BLE001 - the daemon may be gone; the alert then keeps the provider's message
        return None
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return f"container exited with code {code}: killed by the kernel's out-of-memory killer"
    reason = _SIGNAL_EXITS.get(code)
    return f"container exited with code {code}" + (f": {reason}" if reason else "")


def _container_errors(error: Any) -> list[str]:
    """The container's own error lines (the producer prints ``producer: ERROR: ...`` before it exits)."""
    logs = getattr(error, "logs", None) or []
    text = [line.decode(errors="replace") if isinstance(line, bytes) else str(line) for line in logs]
    return [line.strip() for line in text if "ERROR" in line][-3:]


def describe_error(context: Any) -> list[str]:
    """The failure in words: a timeout says so and names the limit, a killed container says how it died."""
    error = context.get("exception")
    task = context.get("task")
    if error is None:
        return ["unknown error"]
    if type(error).__name__ == "AirflowTaskTimeout":
        limit = getattr(task, "execution_timeout", None)
        lines = [
            f"timed out: still running after its execution_timeout of {limit or 'unknown'} "
            f"(Variable {POLICY_VARIABLE}); the task was stopped"
        ]
    else:
        # Preflight and configuration errors list one problem per line: the alert keeps them all,
        # but not a whole traceback-sized message.
        lines = str(error).strip().splitlines()[:MAX_ERROR_LINES]
        if type(error).__name__ == "DockerContainerFailedException":
            exit_text = _container_exit(task)
            if exit_text:
                lines = [exit_text, *[line for line in lines if line != exit_text]]
            lines += _container_errors(error)
    where = _where(task)
    if where:
        lines.append(f"where: {where}")
    return lines


def failure_message(context: Any) -> str:
    ti = context["ti"]
    error = context.get("exception")
    text = (
        f":red_circle: *{ti.dag_id}* task *{ti.task_id}* failed\n"
        f"date: {event_date(context)}   try: {ti.try_number}   run: {ti.run_id}\n"
        "error: " + "\n".join(describe_error(context)) + "\n"
    )
    if isinstance(error, config.ConfigError):
        text += NOT_RETRIED + "\n"
    return text + f"log: {ti.log_url}"


def retry_message(context: Any) -> str:
    """A try that failed and will be retried: what failed and where, so a fault that the retry absorbed is
    still seen."""
    ti = context["ti"]
    return (
        f":warning: *{ti.dag_id}* task *{ti.task_id}* will be retried (try {ti.try_number} failed)\n"
        f"date: {event_date(context)}   run: {ti.run_id}\n"
        "error: " + "\n".join(describe_error(context)) + "\n"
        f"log: {ti.log_url}"
    )


def alert_retry(context: Any) -> None:
    """on_retry_callback of every task: the same words go to the task's log and to every channel."""
    text = retry_message(context)
    log.warning("%s", text)
    notify_all(text)


def alert_failure(context: Any) -> None:
    """on_failure_callback of every task: the same words go to the task's log and to every channel."""
    text = failure_message(context)
    log.error("%s", text)
    notify_all(text)


def record_stage_timing(context: Any, result: Any = None) -> None:
    """post_execute hook: remember when the stage started and how long it ran, for the summary."""
    ti = context["ti"]
    started = ti.start_date or datetime.now(UTC)
    ended = datetime.now(UTC)
    ti.xcom_push(
        key=TIMING_XCOM_KEY,
        value={"start": started.isoformat(), "duration_s": round((ended - started).total_seconds(), 1)},
    )


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


# How the summary groups the stages of a day that did not finish; any other state counts as not run.
_PROBLEM_GROUPS = (("failed", ("failed",)), ("skipped", ("skipped",)))
NOT_RUN = "not run"


def summary_message(day: str, dag_id: str, rows: list[dict[str, Any]]) -> str:
    """First line: finished, or which stages failed, were skipped or never ran; then one line per stage."""
    unfinished = [
        row
        for row in rows
        if row["state"] != "success" and (row["stage"] not in CLEANUP_STAGES or row["state"] == "failed")
    ]
    if not unfinished:
        lines = [f":large_green_circle: *{dag_id}* finished for {day}"]
    else:
        groups = []
        for label, states in _PROBLEM_GROUPS:
            stages = [row["stage"] for row in unfinished if row["state"] in states]
            if stages:
                groups.append(f"{label}: {', '.join(stages)}")
        known = {state for _, states in _PROBLEM_GROUPS for state in states}
        not_run = [row["stage"] for row in unfinished if row["state"] not in known]
        if not_run:
            groups.append(f"{NOT_RUN}: {', '.join(not_run)}")
        lines = [f":red_circle: *{dag_id}* did not finish for {day}: {'; '.join(groups)}"]
    for row in rows:
        duration = "-" if row["duration_s"] is None else format_duration(row["duration_s"])
        lines.append(f"- {row['stage']}: {row['state']}, started {row['start'] or '-'}, took {duration}")
    return "\n".join(lines)


def send_completion_summary(**context: Any) -> str:
    """The last task, run whatever happened upstream: post the day's summary (stage, start, duration, state)."""
    ti = context["ti"]
    stages = (*SUMMARY_STAGES, *CLEANUP_STAGES)
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(stages), run_ids=[ti.run_id])
    run_states = states.get(ti.run_id, {})
    rows = []
    for stage in stages:
        timing = ti.xcom_pull(task_ids=stage, key=TIMING_XCOM_KEY) or {}
        rows.append(
            {
                "stage": stage,
                "state": run_states.get(stage) or NOT_RUN,
                "start": timing.get("start"),
                "duration_s": timing.get("duration_s"),
            }
        )
    text = summary_message(event_date(context), ti.dag_id, rows)
    notify_all(text)
    return text
