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
    """The slice of the runtime task instance the notifications read; states and timings are the test's."""

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert dag_id == self.dag_id and run_ids == [self.run_id]
        return {self.run_id: {task: self.states[task] for task in task_ids if task in self.states}}

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
        states={},
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


def _summary(monkeypatch, states, timings=None) -> str:
    from tripclick.notify import send_completion_summary

    context = _context(task_id="notify_completion")
    context["ti"].states = states
    context["ti"].timings = timings or {}
    with WebhookReceiver() as receiver:
        _slack(monkeypatch, receiver.url)
        returned = send_completion_summary(**context)
    (message,) = receiver.messages
    assert message["payload"]["text"] == returned
    return returned


def test_summary_lists_each_stage_with_start_duration_and_state(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES

    text = _summary(
        monkeypatch,
        states=dict.fromkeys(SUMMARY_STAGES, "success"),
        timings={
            stage: {"start": f"2020-10-01T15:0{i}:00+00:00", "duration_s": 61.0 + i}
            for i, stage in enumerate(SUMMARY_STAGES)
        },
    )
    assert text.splitlines()[0] == ":large_green_circle: *tripclick_daily_pipeline* finished for 2020-10-01"
    for i, stage in enumerate(SUMMARY_STAGES):
        assert f"- {stage}: success, started 2020-10-01T15:0{i}:00+00:00, took 1m0{1 + i}s" in text


def test_summary_of_a_day_with_a_failed_stage_names_what_failed_and_what_never_ran(monkeypatch):
    states = {
        "preflight": "success",
        "producer_server0": "success",
        "producer_server1": "failed",
        "streaming_to_silver": "success",
        "batch_to_bronze": "upstream_failed",
        # etl_to_gold has no state at all: the scheduler never got to it.
    }
    timings = {"preflight": {"start": "2020-10-01T15:00:02+00:00", "duration_s": 4.0}}
    text = _summary(monkeypatch, states, timings)
    lines = text.splitlines()
    assert lines[0] == (
        ":red_circle: *tripclick_daily_pipeline* did not finish for 2020-10-01: "
        "failed: producer_server1; not run: batch_to_bronze, etl_to_gold"
    )
    assert "- preflight: success, started 2020-10-01T15:00:02+00:00, took 0m04s" in lines
    assert "- producer_server1: failed, started -, took -" in lines
    assert "- batch_to_bronze: upstream_failed, started -, took -" in lines
    assert "- etl_to_gold: not run, started -, took -" in lines


def test_summary_of_a_day_stopped_at_preflight(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES

    states = {"preflight": "failed", **dict.fromkeys(SUMMARY_STAGES[1:], "upstream_failed")}
    first = _summary(monkeypatch, states).splitlines()[0]
    assert first == (
        ":red_circle: *tripclick_daily_pipeline* did not finish for 2020-10-01: failed: preflight; "
        "not run: producer_server0, producer_server1, streaming_to_silver, batch_to_bronze, etl_to_gold"
    )


def test_summary_names_skipped_stages_apart(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES

    states = {**dict.fromkeys(SUMMARY_STAGES, "success"), "etl_to_gold": "skipped"}
    first = _summary(monkeypatch, states).splitlines()[0]
    assert first.endswith("did not finish for 2020-10-01: skipped: etl_to_gold")


def test_a_good_day_skips_the_discard_and_is_still_finished(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES

    states = {**dict.fromkeys(SUMMARY_STAGES, "success"), "discard_partial_day": "skipped"}
    lines = _summary(monkeypatch, states).splitlines()
    assert lines[0] == ":large_green_circle: *tripclick_daily_pipeline* finished for 2020-10-01"
    assert "- discard_partial_day: skipped, started -, took -" in lines


def test_a_failed_day_reports_its_discard_and_a_failed_discard_is_named(monkeypatch):
    from tripclick.notify import SUMMARY_STAGES

    states = {
        **dict.fromkeys(SUMMARY_STAGES, "success"),
        "producer_server0": "failed",
        "batch_to_bronze": "upstream_failed",
        "etl_to_gold": "upstream_failed",
        "discard_partial_day": "success",
    }
    lines = _summary(monkeypatch, states).splitlines()
    assert lines[0].endswith(
        "did not finish for 2020-10-01: failed: producer_server0; not run: batch_to_bronze, etl_to_gold"
    )
    assert "- discard_partial_day: success, started -, took -" in lines
    first = _summary(monkeypatch, {**states, "discard_partial_day": "failed"}).splitlines()[0]
    assert first.endswith("failed: producer_server0, discard_partial_day; not run: batch_to_bronze, etl_to_gold")


def test_configuration_failure_alert_says_it_is_not_retried(monkeypatch):
    from tripclick.config import ConfigError
    from tripclick.notify import NOT_RETRIED, failure_message

    context = _context(task_id="producer_server0")
    context["exception"] = ConfigError(["Connection 'docker_server0' is not defined: create it"])
    assert NOT_RETRIED in failure_message(context).splitlines()
    context["exception"] = RuntimeError("Docker daemon restarting")
    assert NOT_RETRIED not in failure_message(context)


def test_stage_timing_is_recorded_for_the_summary():
    import time_machine

    from tripclick.notify import TIMING_XCOM_KEY, record_stage_timing

    started = datetime(2020, 10, 1, 15, 0, tzinfo=UTC)
    context = _context(start_date=started)
    with time_machine.travel(datetime(2020, 10, 1, 15, 1, 35, 500000, tzinfo=UTC), tick=False):
        record_stage_timing(context)
    assert context["ti"].pushed[TIMING_XCOM_KEY] == {"start": started.isoformat(), "duration_s": 95.5}


def test_timeout_alert_names_the_limit_and_the_container():
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowTaskTimeout

    from tripclick.notify import failure_message

    context = _context()
    context["exception"] = AirflowTaskTimeout("Timeout, PID: 4242")
    context["task"] = SimpleNamespace(
        execution_timeout=timedelta(seconds=20),
        docker_url="tcp://web1.example:2376",
        container_name="tripclick-producer-server1-2020-10-01-try2",
    )
    text = failure_message(context)
    assert "timed out: still running after its execution_timeout of 0:00:20" in text
    assert (
        "where: container tripclick-producer-server1-2020-10-01-try2 on the Docker daemon tcp://web1.example:2376"
        in text
    )


def test_killed_container_alert_says_how_it_died():
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    from tripclick.notify import failure_message

    def inspect(container_id, state):
        assert container_id == "abc"
        return {"State": state}

    context = _context()
    context["exception"] = DockerContainerFailedException("Docker container failed: {'StatusCode': 137}")
    for state, expected in (
        ({"ExitCode": 137, "OOMKilled": False}, "container exited with code 137: killed by SIGKILL"),
        ({"ExitCode": 137, "OOMKilled": True}, "killed by the kernel's out-of-memory killer"),
        ({"ExitCode": 3, "OOMKilled": False}, "container exited with code 3\n"),
    ):
        context["task"] = SimpleNamespace(
            container={"Id": "abc"},
            cli=SimpleNamespace(inspect_container=lambda cid, state=state: inspect(cid, state)),
            docker_url="tcp://web1.example:2376",
            container_name="c-try1",
        )
        text = failure_message(context)
        assert expected in text and "Docker container failed" in text, text


# --- email: the smtp provider's notifier against the stack's SMTP server (aiosmtpd) on loopback ----------
class SmtpServer:
    """demo/smtp_receiver's handler on a free loopback port, for the ``with`` block; .messages reads its store."""

    def __init__(self, store):
        from aiosmtpd.controller import Controller

        from demo.smtp_receiver.receiver import StoreHandler
        from tests.dags.netutil import closed_port

        self.store = store
        self.port = closed_port()
        self.controller = Controller(StoreHandler(store), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def messages(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.store.read_text().splitlines() if line.strip()]


def _smtp(monkeypatch, port, to="oncall@tripclick.test, lead@tripclick.test"):
    import json

    extra = {"from_email": "airflow@tripclick.test", "disable_ssl": True, "disable_tls": True, "retry_limit": 1}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_ALERTS", json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})
    )
    if to is not None:
        monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_ALERT_EMAIL_TO", to)


def _alert_both(monkeypatch, tmp_path, alert) -> tuple[dict, dict]:
    """The one Slack message and the one mail that `alert` sends for the failed task's context."""
    with WebhookReceiver() as receiver, SmtpServer(tmp_path / "mail.jsonl") as smtp:
        _slack(monkeypatch, receiver.url)
        _smtp(monkeypatch, smtp.port)
        alert(_context())
    (slack,) = receiver.messages
    (mail,) = smtp.messages
    return slack, mail


def test_failure_alert_reaches_slack_and_email_alike(monkeypatch, tmp_path):
    from tripclick.notify import alert_failure, failure_message

    slack, mail = _alert_both(monkeypatch, tmp_path, alert_failure)
    assert mail["mail_from"] == "airflow@tripclick.test"
    assert mail["rcpt_tos"] == ["oncall@tripclick.test", "lead@tripclick.test"]
    assert mail["subject"] == "tripclick_daily_pipeline task producer_server1 failed"
    # The same text as Slack's, escaped into HTML and back.
    assert slack["payload"]["text"] == failure_message(_context())
    assert slack["payload"]["text"] in mail["body"].replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    for expected in ("date: 2020-10-01", "run: scheduled__2020-10-01T15:00:00+00:00", "container exited with code 3"):
        assert expected in mail["body"]


def test_email_is_off_without_recipients(monkeypatch, tmp_path, caplog):
    from tripclick.notify import notify_all

    with WebhookReceiver() as receiver, SmtpServer(tmp_path / "mail.jsonl") as smtp:
        _slack(monkeypatch, receiver.url)
        _smtp(monkeypatch, smtp.port, to=None)
        monkeypatch.delenv("AIRFLOW_VAR_TRIPCLICK_ALERT_EMAIL_TO", raising=False)
        with caplog.at_level(logging.INFO):
            assert notify_all("hello") == {"slack": True, "email": False}
    assert smtp.messages == []
    assert len(receiver.messages) == 1
    assert "email alerts are off: Variable 'tripclick_alert_email_to' is not set" in caplog.text


def test_unreachable_mail_server_is_logged_not_raised_and_slack_still_gets_it(monkeypatch, caplog):
    from tripclick.notify import notify_all

    with WebhookReceiver() as receiver:
        _slack(monkeypatch, receiver.url)
        _smtp(monkeypatch, closed_port())
        with caplog.at_level(logging.ERROR):
            assert notify_all("hello") == {"slack": True, "email": False}
    assert len(receiver.messages) == 1
    assert "Email notification via Connection 'smtp_alerts' failed; the pipeline carries on" in caplog.text


def test_missing_smtp_connection_is_logged_not_raised(monkeypatch, caplog):
    from tripclick.notify import send_email

    monkeypatch.delenv("AIRFLOW_CONN_SMTP_ALERTS", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_TRIPCLICK_ALERT_EMAIL_TO", "oncall@tripclick.test")
    assert send_email("hello") is False
    assert "smtp_alerts" in caplog.text


def test_retry_alert_names_the_try_and_is_not_taken_for_the_final_failure(monkeypatch, tmp_path):
    from tripclick.notify import alert_retry

    slack, mail = _alert_both(monkeypatch, tmp_path, alert_retry)
    text = slack["payload"]["text"]
    assert text.startswith(
        ":warning: *tripclick_daily_pipeline* task *producer_server1* will be retried (try 2 failed)"
    )
    assert "date: 2020-10-01" in text and "run: scheduled__2020-10-01T15:00:00+00:00" in text
    # The e2e layer and operators find the final failure by this phrase.
    assert "*producer_server1* failed" not in text
    assert mail["subject"].startswith("tripclick_daily_pipeline task producer_server1 will be retried")


def test_summary_goes_by_email_too(monkeypatch, tmp_path):
    from tripclick.notify import SUMMARY_STAGES, send_completion_summary

    context = _context(task_id="notify_completion")
    context["ti"].states = dict.fromkeys(SUMMARY_STAGES, "success")
    with WebhookReceiver() as receiver, SmtpServer(tmp_path / "mail.jsonl") as smtp:
        _slack(monkeypatch, receiver.url)
        _smtp(monkeypatch, smtp.port)
        send_completion_summary(**context)
    assert len(receiver.messages) == 1
    (mail,) = smtp.messages
    assert mail["subject"] == "tripclick_daily_pipeline finished for 2020-10-01"


# --- the day's deadline ------------------------------------------------------------------------------------
DEADLINE = datetime(2020, 10, 1, 19, 0, tzinfo=UTC)


def _run(**fields):
    return {
        "dag_id": "tripclick_daily_pipeline",
        "dag_run_id": "scheduled__2020-10-01T15:00:00+00:00",
        "logical_date": "2020-10-01T15:00:00Z",
        "queued_at": "2020-10-01T15:00:01Z",
        "state": "running",
        "end_date": None,
        **fields,
    }


def test_late_message_names_run_what_is_not_done_and_how_late():
    from tripclick.deadline import late_message

    states = {
        "preflight": "success",
        "producer_server0": "success",
        "producer_server1": "success",
        "streaming_to_silver": "success",
        "batch_to_bronze": "running",
    }
    text = late_message(
        "tripclick_daily_pipeline",
        "scheduled__2020-10-01T15:00:00+00:00",
        "2020-10-01",
        DEADLINE,
        datetime(2020, 10, 1, 19, 2, 5, tzinfo=UTC),
        states,
    )
    assert text.splitlines() == [
        ":hourglass: *tripclick_daily_pipeline* is late for 2020-10-01: the gold marts were not done by "
        "2020-10-01 19:00:00 UTC (2m05s late)",
        "run: scheduled__2020-10-01T15:00:00+00:00",
        "not done: batch_to_bronze: running; etl_to_gold: not started",
    ]
    assert "* failed" not in text


def test_a_run_that_is_still_going_at_its_deadline_is_late():
    from tripclick.deadline import skip_reason

    assert skip_reason(_run(), DEADLINE) is None


def test_a_run_that_already_ended_is_not_late():
    from tripclick.deadline import skip_reason

    # Airflow drops the deadline of a run that succeeded in time, not of one that failed.
    reason = skip_reason(_run(state="failed", end_date="2020-10-01T16:00:00Z"), DEADLINE)
    assert "already ended (failed)" in reason


def test_a_backfill_of_an_old_date_is_not_late():
    from tripclick.deadline import skip_reason

    reason = skip_reason(_run(queued_at="2026-01-05T09:00:00Z"), DEADLINE)
    assert "a backfill or rerun of an old date is not late" in reason


def test_deadline_callback_sends_one_message_when_late_and_none_for_an_ended_run(monkeypatch, tmp_path):
    import asyncio

    from tripclick import deadline

    monkeypatch.setattr(deadline, "_task_states", lambda dag_id, run_id: {"etl_to_gold": "running"})
    context = {"dag_run": _run(), "deadline": {"deadline_time": DEADLINE.isoformat()}}
    ended = {"dag_run": _run(state="success", end_date="2020-10-01T18:00:00Z"), "deadline": context["deadline"]}
    with WebhookReceiver() as receiver, SmtpServer(tmp_path / "mail.jsonl") as smtp:
        _slack(monkeypatch, receiver.url)
        _smtp(monkeypatch, smtp.port)
        assert asyncio.run(deadline.gold_late(context=ended)) is None
        sent = asyncio.run(deadline.gold_late(context=context))
    (slack,) = receiver.messages
    (mail,) = smtp.messages
    assert slack["payload"]["text"] == sent
    assert "etl_to_gold: running" in sent and "run: scheduled__2020-10-01T15:00:00+00:00" in sent
    assert mail["subject"].startswith("tripclick_daily_pipeline is late for 2020-10-01")


def test_deadline_callback_never_raises(caplog):
    import asyncio

    from tripclick.deadline import gold_late

    assert asyncio.run(gold_late(context={"dag_run": {}, "deadline": {"deadline_time": "not a time"}})) is None
    assert "the late message could not be built or sent" in caplog.text


def test_the_dag_deadline_is_measured_from_the_logical_date(dag):
    from airflow.sdk import DeadlineReference

    from tripclick.policy import DEFAULT_POLICY

    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    # DAGRUN_QUEUED_AT breaks clearing a run in Airflow 3.3.2 (docs/monitoring.md).
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval.total_seconds() == DEFAULT_POLICY["offsets"]["gold_deadline_s"]
    assert alert.callback.path == "tripclick.deadline.gold_late"
