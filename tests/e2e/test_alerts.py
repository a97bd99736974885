"""Alerts reach both channels: a failed task's alert goes to Slack and, as a mail, through the stack's SMTP
server; the day's deadline sends one late message for a run still going when it passes, and none for a run
that meets it, a rerun of a late run or a run of an old date."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from demo.stack import settings
from tests.e2e import helpers

DAG_ID = helpers.DAG_ID
DEMO_POLICY = settings.task_policy()
PREFLIGHT_RETRIES = DEMO_POLICY["preflight"]["retries"]
GOLD_DEADLINE = timedelta(seconds=DEMO_POLICY["offsets"]["gold_deadline_s"])
ETL_WINDOW = timedelta(hours=3)  # policy.DEFAULT_POLICY's etl_to_gold_s, which the demo keeps
# How the two deadline runs are placed: the late one's deadline falls this soon after it is triggered (mid-run);
# the other's this long after (a demo run takes a few minutes).
LATE_AFTER = timedelta(seconds=30)
MET_AFTER = GOLD_DEADLINE - ETL_WINDOW


def _late_messages(since: float, run_id: str) -> list[str]:
    return [t for t in helpers.slack_texts(since) if " is late for " in t.splitlines()[0] and f"run: {run_id}" in t]


def _late_mails(since: float, run_id: str) -> list[dict]:
    return [m for m in helpers.emails(since) if " is late for " in m["subject"] and f"run: {run_id}" in m["body"]]


def test_a_failed_task_alerts_slack_and_email_once_each(daemon_down_day):
    run, day = daemon_down_day, daemon_down_day.day
    texts = helpers.slack_texts(run.started, run.ended)
    emails = helpers.emails(run.started, run.ended)
    assert run.tasks["preflight"]["state"] == "failed"
    slack = [t for t in texts if "*preflight* failed" in t]
    mails = [m for m in emails if m["subject"] == f"{DAG_ID} task preflight failed"]
    assert len(slack) == 1, texts
    assert len(mails) == 1, emails
    for text in (slack[0], mails[0]["body"]):
        assert "preflight" in text and f"date: {day}" in text and f"run: {run.run_id}" in text, text
    sender = settings.connections()["smtp_alerts"]["extra"]["from_email"]
    assert mails[0]["rcpt_tos"] == [settings.variables()["tripclick_alert_email_to"]]
    assert mails[0]["mail_from"] == sender
    # Each retry is announced too, on both channels, and never counted as the final failure.
    retries = [t for t in texts if "*preflight* will be retried" in t]
    retry_mails = [m for m in emails if m["subject"].startswith(f"{DAG_ID} task preflight will be retried")]
    assert len(retries) == len(retry_mails) == PREFLIGHT_RETRIES, (retries, retry_mails)
    # A run of a date years back: its deadline passed before it was queued, so no late message.
    assert not [t for t in texts if " is late for " in t]


def _trigger_at(stack, logical: datetime) -> tuple[str, float]:
    stack.airflow.wait_dag()
    run_id = f"manual__deadline__{logical.strftime('%Y%m%dT%H%M%S')}"
    started = time.time()
    stack.airflow.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": logical.isoformat()})
    return run_id, started


@pytest.fixture(scope="module")
def deadline_runs(stack):
    """Two runs of today's data, one after the other (max_active_runs=1): the first's deadline falls while it
    runs, the second's well after it ends. Their logical dates are over 3 h back, so the waits are over."""
    runs = {}
    for name, after in (("late", LATE_AFTER), ("met", MET_AFTER)):
        logical = (datetime.now(UTC) - GOLD_DEADLINE + after).replace(microsecond=0)
        day = logical.date().isoformat()
        stack.reset_day(day)
        stack.generate(day)
        run_id, started = _trigger_at(stack, logical)
        result = stack.airflow.watch(run_id, timeout=helpers.RUN_TIMEOUT)
        runs[name] = (run_id, started, day, result)
    return runs


def _wait_for(predicate, timeout: float = 180):
    """Poll until predicate() is truthy; the deadline's callback runs in the triggerer shortly after the miss."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(2)
    return value


def test_a_run_still_going_at_its_deadline_sends_one_late_message_to_each_channel(stack, deadline_runs):
    run_id, started, day, result = deadline_runs["late"]
    slack = _wait_for(lambda: _late_messages(started, run_id))
    assert len(slack) == 1, helpers.slack_texts(started)
    mails = _wait_for(lambda: _late_mails(started, run_id))
    assert len(mails) == 1, helpers.emails(started)
    head = slack[0].splitlines()[0]
    assert head.startswith(f":hourglass: *{DAG_ID}* is late for {day}: the gold marts were not done by ")
    assert "not done: " in slack[0]


def test_a_run_that_meets_its_deadline_sends_none(stack, deadline_runs):
    run_id, started, _, result = deadline_runs["met"]
    assert result["state"] == "success"
    assert _late_messages(started, run_id) == [] and _late_mails(started, run_id) == []


def test_clearing_a_late_run_works_and_sends_no_second_late_message(stack, deadline_runs):
    run_id, started, _, _ = deadline_runs["late"]
    assert _wait_for(lambda: _late_messages(started, run_id))
    cleared_at = time.time()
    stack.airflow.triggered_at[run_id] = datetime.now(UTC)
    stack.airflow.call("POST", f"/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False, "only_failed": False})
    result = stack.airflow.watch(run_id, timeout=helpers.RUN_TIMEOUT)
    assert result["state"] == "success"
    assert _late_messages(cleared_at, run_id) == [] and _late_mails(cleared_at, run_id) == []
