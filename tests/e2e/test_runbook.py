"""The runbook's commands (docs/operations.md) on the real stack, run as the operator runs them:
`python -m tripclick_ops ...` with the variables `python -m demo.stack ops-env` prints (AIRFLOW_URL, AIRFLOW_USER,
AIRFLOW_PASSWORD_FILE), which is what make backfill / rerun-stage / pause / resume call."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date

import pytest

from demo import api
from demo.stack import config
from tests.e2e import helpers
from tripclick_ops import outcomes

BACKFILL = ("2020-09-10", "2020-09-11", "2020-09-12")
RERUN_STAGE = "etl_to_gold"
PAUSED_DAY = "2020-09-20"  # no data: the run is ended as soon as it has started


def ops(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tripclick_ops", *args],
        cwd=helpers.REPO, env=os.environ | config.ops_env(), capture_output=True, text=True, check=False,
        timeout=timeout,
    )  # fmt: skip


def states(run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in api.airflow().tasks(run_id)}


@pytest.fixture(scope="module")
def backfilled(stack):
    generated = {}
    for day in BACKFILL:
        stack.reset_day(day)
        generated[day] = stack.generate(day)
    # reprocess completed: a day an earlier session already ran is run again, over the data just generated.
    # All three days at once (the backfill's own limit; the DAG's max_active_runs=1 holds for scheduled runs).
    done = ops(
        "backfill", "--from", BACKFILL[0], "--to", BACKFILL[-1], "--max-active-runs", "3", "--reprocess", "completed",
        "--wait", timeout=3 * helpers.RUN_TIMEOUT,
    )  # fmt: skip
    print(done.stdout, done.stderr)
    return done, generated


def test_backfill_of_three_dates_gives_three_exact_days(stack, backfilled):
    done, generated = backfilled
    assert done.returncode == 0, done.stdout + done.stderr
    for day in BACKFILL:
        run = stack.airflow.run_for_date(date.fromisoformat(day))
        assert run is not None, f"the backfill made no run for {day}"
        assert run["run_type"] == "backfill", run
        tasks = stack.airflow.tasks(run["dag_run_id"])
        assert outcomes.task_problems(run["state"], tasks) == [], day
        assert helpers.day_problems(day, generated[day]) == [], day
    # Only the asked range: the day after it got no run from this backfill.
    after = stack.airflow.run_for_date(date(2020, 9, 13))
    assert after is None or after["run_type"] != "backfill", after


def test_rerun_of_one_stage_leaves_the_other_stages_alone_and_makes_its_output_exact(stack, backfilled):
    done, generated = backfilled
    assert done.returncode == 0, done.stdout + done.stderr
    day = BACKFILL[1]
    run_id = stack.airflow.run_for_date(date.fromisoformat(day))["dag_run_id"]
    before = {ti["task_id"]: ti for ti in stack.airflow.tasks(run_id)}
    marts = helpers.marts_snapshot(day)
    # The stage's output is damaged: the day's gold rows are gone.
    with api.gold_connect() as conn, conn.cursor() as cur:
        for table in api.MARTS:
            cur.execute(f"DELETE FROM {table} WHERE event_date = %s", (day,))  # noqa: S608
    assert not any(helpers.marts_snapshot(day).values())

    rerun = ops("rerun-stage", "--date", day, "--stage", RERUN_STAGE, "--wait")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    after = {ti["task_id"]: ti for ti in stack.airflow.tasks(run_id)}
    rerun_tasks = {RERUN_STAGE, "notify_completion"}  # the stage and what depends on it
    for task_id, ti in after.items():
        # discard_partial_day only acts on a failed day: a good one skips it.
        assert ti["state"] == ("skipped" if task_id in outcomes.SKIPPED_ON_A_GOOD_DAY else "success"), (task_id, ti)
        if task_id in rerun_tasks:
            assert ti["try_number"] == before[task_id]["try_number"] + 1, task_id
        else:
            assert (ti["try_number"], ti["end_date"]) == (before[task_id]["try_number"], before[task_id]["end_date"]), (
                task_id
            )
    assert helpers.marts_snapshot(day) == marts
    assert helpers.day_problems(day, generated[day]) == []


def scheduler_heartbeat() -> str | None:
    return api.airflow().call("GET", "/monitor/health")["scheduler"]["latest_scheduler_heartbeat"]


def test_a_paused_pipeline_starts_no_run_and_resume_starts_it(stack):
    stack.airflow.wait_dag()
    paused = ops("pause")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    try:
        assert stack.airflow.is_paused()
        run_id = stack.airflow.trigger(date.fromisoformat(PAUSED_DAY))
        # The scheduler heartbeats twice after the trigger: it went through its loop many times meanwhile.
        seen = [scheduler_heartbeat()]
        deadline = time.monotonic() + 120
        while len(set(seen)) < 3:
            assert time.monotonic() < deadline, f"the scheduler did not heartbeat twice in 120 s: {seen}"
            time.sleep(1)
            seen.append(scheduler_heartbeat())
        assert stack.airflow.run(run_id)["state"] == "queued"
        assert set(states(run_id).values()) <= {None}, states(run_id)
    finally:
        resumed = ops("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not stack.airflow.is_paused()
    try:
        deadline = time.monotonic() + helpers.RUN_TIMEOUT
        while not any(s not in (None, "scheduled", "queued") for s in states(run_id).values()):
            assert time.monotonic() < deadline, f"no task of {run_id} started after resume: {states(run_id)}"
            time.sleep(2)
        assert stack.airflow.run(run_id)["state"] == "running"
    finally:
        # The day itself is not the point here: end the run so the next run does not queue behind it.
        stack.airflow.call("PATCH", f"/dags/{helpers.DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
