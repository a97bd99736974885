"""Faults in the middle of a day: a producer killed, a task that hangs, a Spark worker lost, a full disk, two
dates at once. Each one says in the task log and the Slack alert what failed and where, is retried as the task
policy promises, and leaves the day's silver, bronze and gold exact or absent; a plain rerun makes them exact.
Every run's task logs, deferred waits included, are read back through the REST API as the UI reads them."""

from __future__ import annotations

import json
import time
from datetime import date

from demo import api
from demo.stack import config
from demo.stack.airflow import DEMO_POLICY
from tests.e2e import helpers
from tests.e2e import midflight_helpers as mh


def _producer_containers(stack, server: str, day: str, status: str) -> list:
    return [c for c in stack.containers_for_day(server, day) if c.status == status]


def _landed_by(container_id: str, day: str) -> list:
    # The producer names its landing files after its host name, which Docker sets to the short container id.
    return [p for p in helpers.landing_files(day) if p.name.startswith(container_id[:12])]


def test_producer_killed_midway_is_retried_from_the_start_and_the_day_stays_exact(stack):
    day = "2020-08-11"
    server = "server1"
    task_id = f"producer_{server}"
    stack.reset_day(day)
    stack.generate(day)
    t0 = time.time()
    with mh.run_in_background(stack, day) as pending:
        # Halfway: once the first try's container has landed some of the day, and while it still runs.
        def running_with_landed_files():
            for container in _producer_containers(stack, server, day, "running"):
                if _landed_by(container.id, day):
                    return container
            return None

        victim = mh.wait_for(f"a running {server} producer that has landed files", running_with_landed_files, pending)
        client = stack.docker(server).client()
        try:
            client.containers.get(victim.id).kill()
        finally:
            client.close()
        run = pending.result()

    first_name = f"tripclick-producer-{server}-{day}-try1"
    assert victim.name == first_name, victim.name
    died = [e for e in stack.container_events(server, t0) if e["action"] == "die"]
    assert [(e.get("name"), e.get("exitCode")) for e in died][:1] == [(first_name, "137")], (
        f"the first try's container did not die of the kill (it may have finished first): {died}"
    )
    assert len(_landed_by(victim.id, day)) < len(helpers.landing_files(day))

    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    assert [t["state"] for t in stack.tries(run, task_id)] == ["failed", "success"]
    # The retry re-sent the day from the start, in a container of its own that was removed once it succeeded.
    assert [(e.get("name"), e.get("exitCode")) for e in died][1:] == [(f"tripclick-producer-{server}-{day}-try2", "0")]
    assert [c.name for c in stack.containers_for_day(server, day)] == [first_name]  # kept for inspection

    url = f"tcp://{config.HOST}:{config.PORTS[server]}"
    expected = (
        "container exited with code 137: killed by SIGKILL",
        f"where: container {first_name} on the Docker daemon {url}",
    )
    log1 = "\n".join(api.task_log_lines(helpers.DAG_ID, run.run_id, task_id, attempt=1))
    # The retry absorbed the fault, so no failure alert; the warning that the try will be retried says why.
    assert not mh.alerts_for(t0, task_id), helpers.slack_texts(t0)
    (warning,) = mh.retry_warnings(t0, task_id)
    for text in expected:
        assert text in log1, (text, log1[-3000:])
        assert text in warning, (text, warning)
    assert "(try 1 failed)" in warning, warning

    landed = mh.landed_records(day)
    assert len(landed) > len(mh.source_records(day)), "nothing was re-sent"
    mh.assert_day_exact(day)
    mh.assert_every_log_readable(stack, run)

    before = helpers.marts_snapshot(day)
    rerun = stack.run(day)
    assert rerun.state == "success", {t: ti["state"] for t, ti in rerun.tasks.items()}
    mh.assert_day_exact(day)
    assert helpers.marts_snapshot(day) == before
    mh.assert_every_log_readable(stack, rerun)


def test_hanging_producer_times_out_its_container_is_stopped_and_the_alert_says_so(stack):
    day = "2020-08-12"
    timeout_s = 20
    stack.reset_day(day)
    stack.generate(day)
    # The policy and the producer environment are set in the stack's environment, so this run gets its own
    # (`airflow dags test` with a changed environment): a replay a billion times slower than real time never
    # ends, and the producers' execution timeout is cut to seconds.
    policy = {**DEMO_POLICY, "producer": {**DEMO_POLICY["producer"], "timeout_s": timeout_s}}
    t0 = time.time()
    result = stack.dags_test(
        day,
        extra_env={
            "AIRFLOW_VAR_TRIPCLICK_TASK_POLICY": json.dumps(policy),
            "AIRFLOW_VAR_TRIPCLICK_PRODUCER_EXTRA_ENV": json.dumps({"TRIPCLICK_REPLAY_SPEED": "1e-9"}),
        },
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    tries = 1 + DEMO_POLICY["producer"]["retries"]
    for server in config.DOCKER_SERVERS:
        task_id = f"producer_{server}"
        assert [t["state"] for t in stack.dags_test_tries(day, task_id, t0)] == ["failed"] * tries, task_id
        # Every try's container was stopped on its daemon when its task timed out: none is left running.
        containers = stack.containers_for_day(server, day)
        assert sorted(c.name for c in containers) == [
            f"tripclick-producer-{server}-{day}-try{n}" for n in range(1, tries + 1)
        ]
        assert all(c.status == "exited" for c in containers), [(c.name, c.status) for c in containers]
        kills = [e for e in stack.container_events(server, t0) if e["action"] in ("kill", "stop")]
        assert {e.get("name") for e in kills} == {c.name for c in containers}, kills
        # Each try but the last warns that it will be retried; the last one alerts that the task failed.
        alerts = mh.retry_warnings(t0, task_id) + mh.alerts_for(t0, task_id)
        assert len(alerts) == tries and mh.alerts_for(t0, task_id) == alerts[-1:], helpers.slack_texts(t0)
        url = f"tcp://{config.HOST}:{config.PORTS[server]}"
        for n, alert in enumerate(alerts, 1):
            assert f"timed out: still running after its execution_timeout of 0:00:{timeout_s}" in alert, alert
            assert f"where: container tripclick-producer-{server}-{day}-try{n} on the Docker daemon {url}" in alert
    assert f"timed out: still running after its execution_timeout of 0:00:{timeout_s}" in out, out[-3000:]
    # Nothing half-written: silver is exact for the little that landed, bronze and gold are absent.
    mh.assert_silver_matches_landing(day)
    helpers.assert_nothing_downstream(day)

    rerun = stack.run(day)
    assert rerun.state == "success", {t: ti["state"] for t, ti in rerun.tasks.items()}
    mh.assert_day_exact(day)
    mh.assert_every_log_readable(stack, rerun)


def test_two_dates_triggered_together_run_one_at_a_time_and_both_end_exact(stack):
    days = ("2020-08-13", "2020-08-14")
    for day in days:
        stack.reset_day(day)
        stack.generate(day)
    stack.airflow.wait_dag(helpers.DAG_ID)
    run_ids = [stack.airflow.trigger(helpers.DAG_ID, date.fromisoformat(day)) for day in days]
    ended = [stack.airflow.watch(helpers.DAG_ID, run_id, timeout=2 * helpers.RUN_TIMEOUT) for run_id in run_ids]
    assert [r["state"] for r in ended] == ["success", "success"], ended
    # One active run at a time (max_active_runs=1): one of them started only after the other had ended.
    first, second = sorted(ended, key=lambda r: api.parse_time(r["start_date"]))
    assert api.parse_time(second["start_date"]) >= api.parse_time(first["end_date"]), (first, second)
    for day in days:
        mh.assert_day_exact(day)
    for run_id, day in zip(run_ids, days, strict=True):
        tasks = {ti["task_id"]: ti for ti in stack.airflow.tasks(helpers.DAG_ID, run_id)}
        mh.assert_every_log_readable(stack, helpers.Run(day, run_id, "success", 0.0, tasks))
