"""Slack messages over a real HTTP webhook receiver on loopback; delivery failures never raise."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from tests.dags.conftest import SCHEDULED
from tests.dags.netutil import WebhookReceiver, closed_port


def _slack(monkeypatch, url):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK", f'{{"conn_type": "slackwebhook", "password": "{url}"}}')


class FakeTI(SimpleNamespace):
    """The slice of the runtime task instance the notifications read."""

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {run_ids[0]: dict.fromkeys(task_ids, "success")}

    def xcom_pull(self, task_ids, key):
        return self.timings.get(task_ids)

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context(task_id="producer_server1", **ti_fields):
    ti = FakeTI(
        dag_id="tripclick_daily_pipeline",
        task_id=task_id,
        run_id="scheduled__2020-10-01T15:00:00+00:00",
        try_number=2,
        log_url="http://airflow.example/dags/tripclick_daily_pipeline/runs/x/tasks/producer_server1",
        timings={},
        pushed={},
        **ti_fields,
    )
    dag_run = SimpleNamespace(logical_date=SCHEDULED, run_after=SCHEDULED)
    return {"ti": ti, "dag_run": dag_run, "exception": RuntimeError("container exited with code 3\ntrace...")}


def test_failure_alert_names_dag_task_try_date_and_log(monkeypatch):
    from tripclick.notify import alert_failure

    with WebhookReceiver() as receiver:
        _slack(monkeypatch, receiver.url)
        alert_failure(_context())
    (message,) = receiver.messages
    assert message["path"] == "/services/T000/B000/XXXX"
    text = message["payload"]["text"]
    for expected in (
        "tripclick_daily_pipeline",
        "producer_server1",
        "try: 2",
        "date: 2020-10-01",
        "container exited with code 3",
        "log: http://airflow.example/dags/tripclick_daily_pipeline/runs/x/tasks/producer_server1",
    ):
        assert expected in text


def test_failure_alert_keeps_every_preflight_problem(monkeypatch):
    from tripclick.notify import failure_message
    from tripclick.preflight import PreflightError

    context = _context(task_id="preflight")
    context["exception"] = PreflightError(["server0: daemon down", "spark: master down"])
    text = failure_message(context)
    assert "server0: daemon down" in text and "spark: master down" in text


def test_unreachable_slack_is_logged_not_raised(monkeypatch, caplog):
    from tripclick.notify import alert_failure

    _slack(monkeypatch, f"http://127.0.0.1:{closed_port()}/services/T000/B000/XXXX")
    with caplog.at_level(logging.ERROR):
        alert_failure(_context())
    assert "Slack notification via Connection 'slack_webhook' failed; the pipeline carries on" in caplog.text


def test_missing_slack_connection_is_logged_not_raised(monkeypatch, caplog):
    from tripclick.notify import post_to_slack

    monkeypatch.delenv("AIRFLOW_CONN_SLACK_WEBHOOK")
    assert post_to_slack("hello") is False
    assert "slack_webhook" in caplog.text


def test_summary_lists_each_stage_with_start_duration_and_state(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES, send_completion_summary

    context = _context(task_id="notify_completion")
    context["ti"].timings = {
        stage: {"start": f"2020-10-01T15:0{i}:00+00:00", "duration_s": 61.0 + i}
        for i, stage in enumerate(SUMMARY_STAGES)
    }
    with WebhookReceiver() as receiver:
        _slack(monkeypatch, receiver.url)
        send_completion_summary(**context)
    text = receiver.messages[0]["payload"]["text"]
    assert "finished for 2020-10-01" in text
    for i, stage in enumerate(SUMMARY_STAGES):
        assert f"- {stage}: success, started 2020-10-01T15:0{i}:00+00:00, took 1m0{1 + i}s" in text


def test_stage_timing_is_recorded_for_the_summary():
    from tripclick.notify import TIMING_XCOM_KEY, record_stage_timing

    started = datetime(2020, 10, 1, 15, 0, tzinfo=UTC)
    context = _context(start_date=started)
    record_stage_timing(context)
    timing = context["ti"].pushed[TIMING_XCOM_KEY]
    assert timing["start"] == started.isoformat()
    assert timing["duration_s"] > 0
