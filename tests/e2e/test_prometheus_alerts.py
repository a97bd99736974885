"""The team hears what Airflow itself cannot say: each alert of the release's rules, fired by a real fault on
the local stack, from the metrics Airflow really sent, through the real statsd exporter, Prometheus and
Alertmanager with the release's route, to the Slack stand-in's alert webhook.

The rules' windows and Alertmanager's waits are shortened for this module (tests/e2e/alerting.py); the faults
are real. Each fault's time to its message is written to <state>/monitoring/fault-to-message.json;
docs/monitoring.md gives the same with production's windows.
"""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

from demo import api
from demo.stack import airflow as stack_airflow
from demo.stack import config, monitoring
from tests.e2e import alerting, helpers

FAILED_DAY = "2020-07-15"  # preflight fails: server1's Docker daemon is down throughout
QUEUED_DAY = "2020-07-16"  # triggered while the DAG is paused: it never starts
BROKEN_DAG = config.REPO / "dags" / "tripclick_bad_commit.py"
# What a bad commit brings: a DAG file that no longer parses ("airflow" and "dag" in it, so the dag-processor
# does parse it).
BROKEN_SOURCE = "from airflow.sdk import dag\n\n\n@dag(schedule=None\ndef tripclick_bad_commit():\n    pass\n"
WAIT_S = 240  # bounded wait for one message; the short windows make each arrive within about 90 s
SECONDS: dict[str, float] = {}


def record(name: str, fault: float, message: alerting.Message) -> None:
    SECONDS[name] = round(message.received_at - fault, 1)
    path = monitoring.monitoring_dir("fault-to-message.json")
    path.write_text(json.dumps(SECONDS, indent=2) + "\n")


def scheduler() -> stack_airflow.AirflowComponent:
    return next(c for c in stack_airflow.components() if c.component == "scheduler")


def wait_no_import_error(stack, timeout: float = 180) -> None:
    """Every later test's trigger refuses to run while the DAG folder has an import error."""
    deadline = time.time() + timeout
    while stack.airflow.call("GET", "/importErrors")["total_entries"]:
        if time.time() > deadline:
            raise AssertionError(f"the DAG folder still has import errors {timeout:.0f}s after the fix")
        time.sleep(2)


# Alerts this module fires: an earlier test may have left one firing (a failed day an hour ago, by production's
# windows); under the short windows it ends within a minute.
FIRED_HERE = {
    "TripclickRunFailed",
    "AirflowDagImportErrors",
    "AirflowSchedulerHeartbeatMissing",
    "StatsdExporterDown",
}


@pytest.fixture(scope="module")
def short_windows(stack):
    alerting.use_short_windows()
    alerting.wait_quiet(FIRED_HERE, timeout=WAIT_S)
    yield
    alerting.use_production_windows()


@pytest.fixture(scope="module")
def failed_day(stack, short_windows) -> helpers.Run:
    """A day that fails at once (preflight finds server1's daemon down); its preflight also starts the
    module's day-start window."""
    stack.reset_day(FAILED_DAY)
    daemon = stack.docker("server1")
    daemon.down()
    try:
        run = stack.run(FAILED_DAY)
    finally:
        daemon.up()
    assert run.state == "failed"
    return run


@pytest.fixture(scope="module")
def control_plane_faults(stack, failed_day):
    """Three faults at once: a bad commit's DAG file, the DAG paused with a run waiting, the scheduler stopped.
    Then each is fixed. (fault times, FIRING messages, RESOLVED messages, the waiting run's tasks)"""
    client = stack.airflow
    faults: dict[str, float] = {}
    preflight = stack.tries(failed_day, "preflight")
    # The day-start alert counts from the day's last start of preflight, as production's counts from 15:00.
    faults["TripclickRunNotStarted"] = max(api.parse_time(t["start_date"]).timestamp() for t in preflight)
    client.set_paused(True)
    queued = client.trigger(date.fromisoformat(QUEUED_DAY))
    comp = scheduler()
    try:
        BROKEN_DAG.write_text(BROKEN_SOURCE)
        faults["AirflowDagImportErrors"] = time.time()
        comp.down()
        faults["AirflowSchedulerHeartbeatMissing"] = time.time()
        fired = {name: alerting.wait_message(name, "FIRING", since=at, timeout=WAIT_S) for name, at in faults.items()}
        waiting = client.tasks(queued)
        BROKEN_DAG.unlink()
        fixed = {"AirflowDagImportErrors": time.time()}
        comp.up()
        fixed["AirflowSchedulerHeartbeatMissing"] = time.time()
        resolved = {
            name: alerting.wait_message(name, "RESOLVED", since=at, timeout=WAIT_S) for name, at in fixed.items()
        }
        yield faults, fired, fixed, resolved, client.run(queued), waiting
    finally:
        BROKEN_DAG.unlink(missing_ok=True)
        if not comp.pid():
            comp.up()
        client.call("DELETE", f"/dags/{config.DAG_ID}/dagRuns/{queued}")
        client.set_paused(False)
        wait_no_import_error(stack)


def test_a_bad_commit_is_heard_and_its_fix_clears_it(control_plane_faults):
    faults, fired, fixed, resolved, _, _ = control_plane_faults
    name = "AirflowDagImportErrors"
    assert fired[name].title == f"FIRING: {name}"
    assert "1 DAG file(s) fail to import" in fired[name].text
    record(name, faults[name], fired[name])
    record(f"{name} cleared", fixed[name], resolved[name])


def test_a_stopped_scheduler_is_heard(control_plane_faults):
    faults, fired, fixed, resolved, _, _ = control_plane_faults
    name = "AirflowSchedulerHeartbeatMissing"
    assert "No Airflow scheduler heartbeat" in fired[name].text
    record(name, faults[name], fired[name])
    record(f"{name} cleared", fixed[name], resolved[name])


def test_a_day_that_never_started_is_heard(control_plane_faults):
    faults, fired, _, _, queued_run, waiting = control_plane_faults
    name = "TripclickRunNotStarted"
    assert fired[name].title == f"FIRING: {name} ({config.DAG_ID})"
    # The run waited, paused, and no task of it ever started.
    assert queued_run["state"] == "queued"
    assert [t["task_id"] for t in waiting if t.get("start_date")] == []
    record(name, faults[name], fired[name])


def test_a_stopped_exporter_is_heard_after_a_slack_outage(stack, control_plane_faults):
    """The exporter stops while the Slack webhook is down: Alertmanager keeps trying and the message arrives
    once Slack is back; the alerts the missing metrics cause (heartbeat, day start) are held back."""
    receiver, exporter = stack.slack(), monitoring.StatsdExporter()
    receiver.down()
    try:
        exporter.down()
        stopped = time.time()
        alerting.wait_firing("StatsdExporterDown", timeout=WAIT_S)
        failed_before = alerting.failed_slack_notifications()
        deadline = time.time() + WAIT_S
        while alerting.failed_slack_notifications() <= failed_before:
            assert time.time() < deadline, "Alertmanager never tried to send StatsdExporterDown"
            time.sleep(1)
    finally:
        restarting = time.time()
        receiver.up()
    fired = alerting.wait_message("StatsdExporterDown", "FIRING", since=stopped, timeout=WAIT_S)
    assert fired.received_at >= restarting, "delivered while the webhook was down?"
    assert "nothing from the statsd exporter" in fired.text
    # With the exporter gone the heartbeat is gone too: that alert fires in Prometheus, and Alertmanager holds it.
    alerting.wait_firing("AirflowSchedulerHeartbeatMissing", timeout=WAIT_S)
    time.sleep(5)  # a whole short group_wait and group_interval: long enough for a message that would be sent
    restarted = time.time()
    exporter.up()
    # Held back while the exporter was down (the heartbeat's own series come back a scrape or two after it).
    during = [m.title for m in alerting.messages(stopped) if m.received_at < restarted]
    assert "FIRING: AirflowSchedulerHeartbeatMissing" not in during
    resolved = alerting.wait_message("StatsdExporterDown", "RESOLVED", since=restarted, timeout=WAIT_S)
    record("StatsdExporterDown", stopped, fired)
    record("StatsdExporterDown cleared", restarted, resolved)


def test_a_failed_day_is_one_alert_beside_airflows_own(failed_day, control_plane_faults):
    """Last in the module, so "once" covers its minutes: one TripclickRunFailed, no TripclickTaskFailed (Airflow
    posts the failed task itself), and Airflow's own day summary once."""
    sent = alerting.messages(failed_day.started)
    assert [m.title for m in sent if m.alertname == "TripclickRunFailed"] == [
        f"FIRING: TripclickRunFailed ({config.DAG_ID})"
    ]
    assert [m.title for m in sent if m.alertname == "TripclickTaskFailed"] == []
    assert len(helpers.summaries(failed_day.started, FAILED_DAY)) == 1
    message = next(m for m in sent if m.alertname == "TripclickRunFailed")
    record("TripclickRunFailed", failed_day.ended, message)
