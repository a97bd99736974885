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


def failure_message(context: Any) -> str:
    ti = context["ti"]
    error = context.get("exception")
    # Preflight and configuration errors list one problem per line: the alert keeps them all,
    # but not a whole traceback-sized message.
    lines = str(error).strip().splitlines()[:MAX_ERROR_LINES] if error else ["unknown error"]
    text = (
        f":red_circle: *{ti.dag_id}* task *{ti.task_id}* failed\n"
        f"date: {event_date(context)}   try: {ti.try_number}   run: {ti.run_id}\n"
        "error: " + "\n".join(lines) + "\n"
    )
    if isinstance(error, config.ConfigError):
        text += NOT_RETRIED + "\n"
    return text + f"log: {ti.log_url}"


def alert_failure(context: Any) -> None:
    """on_failure_callback of every task."""
    notify_all(failure_message(context))


def retry_message(context: Any) -> str:
    ti = context["ti"]
    error = context.get("exception")
    first = str(error).strip().splitlines()[0] if error and str(error).strip() else "unknown error"
    # No "*<task>* failed" here: that phrase marks the final failure, which alerts on its own.
    return (
        f":large_yellow_circle: *{ti.dag_id}* task *{ti.task_id}* will retry: try {ti.try_number} did not succeed\n"
        f"date: {event_date(context)}   run: {ti.run_id}\n"
        f"error: {first}\n"
        f"log: {ti.log_url}"
    )


def alert_retry(context: Any) -> None:
    """on_retry_callback of every task."""
    notify_all(retry_message(context))


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
    unfinished = [row for row in rows if row["state"] != "success"]
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
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(SUMMARY_STAGES), run_ids=[ti.run_id])
    run_states = states.get(ti.run_id, {})
    rows = []
    for stage in SUMMARY_STAGES:
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
