"""The whole pipeline on the real stack: a day end to end, a backfill, a rerun."""

from __future__ import annotations

from datetime import datetime

import pytest

from demo.stack import config, settings
from tests.e2e import helpers
from tests.e2e.conftest import GOOD_DAY
from tripclick_ops import outcomes

# Airflow's default [api_auth] jwt_leeway: a token is still accepted this long after it expired.
AIRFLOW_JWT_LEEWAY_S = 10

DAY = GOOD_DAY
EARLIER_DAY = "2020-09-01"


@pytest.fixture(scope="module")
def first_run(good_day):
    return good_day


def test_happy_path_runs_every_stage_and_publishes_consistent_marts(stack, first_run):
    run, generated = first_run
    assert outcomes.task_problems(run.state, list(run.tasks.values())) == []

    # Each producer ran on its own web server's daemon, exited 0, and its container is gone.
    for server, other in (("server0", "server1"), ("server1", "server0")):
        events = [
            e
            for e in stack.container_events(server, run.started, run.ended)
            if e.get("org.tripclick.event-date") == DAY
        ]
        started = [e for e in events if e["action"] == "start"]
        died = [e for e in events if e["action"] == "die"]
        assert [e["org.tripclick.server"] for e in started] == [server], events
        assert [e.get("exitCode") for e in died] == ["0"], events
        assert not [e for e in events if e.get("org.tripclick.server") == other]
        assert stack.containers_for_day(server, DAY) == []

    # Silver deduplicated, bronze complete, gold consistent with silver, as `make kind-test` checks it.
    assert helpers.day_problems(DAY, generated) == []
    texts = helpers.slack_texts(run.started, run.ended)
    assert outcomes.slack_problems(texts, DAY) == [], texts
    # No alert of any kind on a good day.
    assert not [t for t in texts if "* failed" in t], texts


def test_a_stage_outlives_its_first_execution_token(first_run):
    """The stack's task token lives 6 s (plus the API's leeway): a longer stage renewed it and reported success."""
    run, _ = first_run
    longest = max(run.tasks.values(), key=lambda ti: ti["duration"] or 0)
    assert longest["state"] == "success"
    assert longest["duration"] > settings.execution_token_seconds() + AIRFLOW_JWT_LEEWAY_S, longest


def test_the_ui_shows_what_each_stage_really_ran(first_run):
    """Rendered fields as the REST API (and so the UI) serves them, recorded when the task ended."""
    run, _ = first_run
    try_number = run.tasks["producer_server0"]["try_number"]
    producer = run.tasks["producer_server0"]["rendered_fields"]
    assert producer["image"] == settings.producer_ref()
    assert producer["docker_url"] == f"tcp://{config.HOST}:{config.PORTS['server0']}"
    assert producer["command"][:2] == ["--file", f"/app/data/date={DAY}/events.json"]
    assert producer["container_name"] == f"tripclick-producer-server0-{DAY}-try{try_number}"
    spark = run.tasks["streaming_to_silver"]["rendered_fields"]
    assert spark["application"] == f"{settings.variables()['tripclick_spark_apps_dir']}/streaming_to_silver.py"
    assert spark["application_args"][:2] == ["--date", DAY]


def test_backfill_of_an_earlier_date_does_not_wait_and_survives_slack_down(stack, first_run):
    stack.reset_day(EARLIER_DAY)
    generated = stack.generate(EARLIER_DAY)
    slack = stack.slack()
    slack.down()
    try:
        run = stack.run(EARLIER_DAY)
    finally:
        slack.up()
    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    # The waits aim at that day's 17:00 and 18:00 UTC, long past, so they released at once.
    for task_id, hour in (("wait_for_batch_to_bronze_window", 17), ("wait_for_etl_to_gold_window", 18)):
        ti = run.tasks[task_id]
        assert ti["state"] == "success"
        target = datetime.fromisoformat(ti["rendered_fields"]["target_time"])
        assert target == datetime.fromisoformat(f"{EARLIER_DAY}T{hour}:00:00+00:00")
    (traffic,) = helpers.marts_snapshot(EARLIER_DAY)["mart_daily_traffic"]
    assert traffic[1] == generated["distinct_dedup_keys"]
    # Slack was down: the summary could not be delivered, the pipeline still succeeded and said so.
    assert run.tasks["notify_completion"]["state"] == "success"
    assert "Slack notification via Connection 'slack_webhook' failed" in run.log("notify_completion")


def test_rerun_of_the_same_date_leaves_identical_marts_and_other_dates_alone(stack, first_run):
    before = helpers.marts_snapshot(DAY)
    other_before = helpers.marts_snapshot(EARLIER_DAY)
    assert all(before.values()), "the first run left an empty mart"
    landed_before = len(helpers.landing_files(DAY))
    run = stack.run(DAY)
    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    # Every stage ran again in this run (identical marts from a run that did nothing would prove nothing).
    for stage in helpers.STAGES:
        assert [t["state"] for t in stack.tries(run, stage)] == ["success"], stage
    # The producers really sent the day again (new landing files); dedup and the per-date replace absorb it.
    assert len(helpers.landing_files(DAY)) > landed_before
    assert helpers.marts_snapshot(DAY) == before
    assert helpers.marts_snapshot(EARLIER_DAY) == other_before
