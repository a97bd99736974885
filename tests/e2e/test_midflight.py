"""Faults in the middle of a day: a producer killed, a task that hangs, a Spark worker lost, a full disk, two
dates at once. Each one says in the task log and the Slack alert what failed and where, is retried as the task
policy promises, and leaves the day's silver, bronze and gold exact or absent; a plain rerun makes them exact.
Every run's task logs, deferred waits included, are read back through the REST API as the UI reads them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from demo import api
from demo.stack import config, settings
from tests.e2e import helpers
from tests.e2e import midflight_helpers as mh

DEMO_POLICY = settings.task_policy()


def _producer_containers(stack, server: str, day: str, status: str) -> list:
    return [c for c in stack.containers_for_day(server, day) if c.status == status]


def _landed_by(container_id: str, day: str) -> list:
    # The producer names its landing files after its host name, which Docker sets to the short container id.
    return [p for p in helpers.landing_files(day) if p.name.startswith(container_id[:12])]


def _running_spark_tasks(master, app_name: str) -> tuple[str | None, int]:
    """(application id, tasks its executors are running now), from the master's JSON and the executors' logs in
    the worker's work folder (the demo's drivers run without a UI, so no driver REST API to ask)."""
    apps = [a for a in master.master_json().get("activeapps", []) if a.get("name") == app_name]
    if not apps:
        return None, 0
    app_id = apps[0]["id"]
    running = 0
    for stderr in config.state("spark", "work", app_id).glob("*/stderr"):
        text = stderr.read_text(errors="replace")
        running += text.count("Running task ") - text.count("Finished task ")
    return app_id, running


# What the driver logs when the executors of a dead worker are gone (TaskSchedulerImpl, TaskSetManager).
LOST_EXECUTOR_MARKERS = ("Lost executor", "ExecutorLostFailure")
LOST_EXECUTOR_WAIT_S = 90


def _wait_until_executors_lost(stack, day: str, since: float, pending, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pending.done():
        try:
            run_id = stack.airflow.run_for_date(date.fromisoformat(day))["dag_run_id"]
            tries = [
                t["try_number"]
                for t in stack.airflow.tries(run_id, "batch_to_bronze")
                if t["start_date"] and api.parse_time(t["start_date"]).timestamp() >= since
            ]
            if len(tries) > 1:
                return  # the killed try ended and a retry took over: the loss is the retry's to absorb
            text = "\n".join(stack.airflow.log_lines(run_id, "batch_to_bronze", try_number=max(tries, default=None)))
        except api.ApiError:
            text = ""  # a log read during the fault may fail; ask again
        if any(marker in text for marker in LOST_EXECUTOR_MARKERS):
            return
        time.sleep(1)


@dataclass
class AbsorbedFaults:
    run: helpers.Run
    t0: float
    victim: object  # the first try's producer container, killed halfway
    app_id: str  # the batch_to_bronze application whose worker was killed


KILLED_DAY = "2020-08-11"
KILLED_SERVER = "server1"


@pytest.fixture(scope="module")
def absorbed_faults(stack) -> AbsorbedFaults:
    """One day with the two faults a day absorbs by itself: a producer killed halfway (its retry re-sends the
    day), then the Spark worker killed while batch_to_bronze runs (Spark, or a retry, runs the lost tasks
    again). Each is checked by its own test below; sharing the day saves a whole run."""
    day, server = KILLED_DAY, KILLED_SERVER
    stack.reset_day(day)
    stack.generate(day)
    master, worker = stack.spark()
    app_name = f"tripclick-batch_to_bronze-{day}"
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

        try:
            app_id, _ = mh.wait_for(
                f"Spark application {app_name} running tasks",
                lambda: (lambda found: found if found[1] > 0 else None)(_running_spark_tasks(master, app_name)),
                pending,
            )
            pid = worker.pid()
            assert pid, "the Spark worker is not running"
            os.kill(pid, signal.SIGKILL)
            stack.wait_no_alive_spark_worker()
            # The worker stays away, as a crashed host would, until the driver has seen its executors lost (or
            # the try ended over it and a retry will absorb the loss); bounded, so the worker always comes back.
            _wait_until_executors_lost(stack, day, t0, pending, timeout=LOST_EXECUTOR_WAIT_S)
        finally:
            worker.up()
        run = pending.result()
    return AbsorbedFaults(run, t0, victim, app_id)


def test_spark_worker_lost_during_batch_to_bronze_the_job_completes_and_bronze_is_exact(stack, absorbed_faults):
    run, t0, app_id = absorbed_faults.run, absorbed_faults.t0, absorbed_faults.app_id
    app_name = f"tripclick-batch_to_bronze-{run.day}"
    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    tries = [t for t in stack.tries(run, "batch_to_bronze") if api.parse_time(t["start_date"]).timestamp() <= run.ended]
    assert tries and tries[-1]["state"] == "success", tries
    # Whichever absorbed the loss (Spark re-running the lost tasks, or an Airflow retry), a try names it.
    logs = [mh.log_text(mh.task_log_via_api(stack, run.run_id, "batch_to_bronze", t["try_number"])) for t in tries]
    assert any(marker in text for text in logs for marker in LOST_EXECUTOR_MARKERS), (
        f"application {app_id} had running tasks when its worker was killed, yet no try's log names a lost "
        f"executor: {[text[-2000:] for text in logs]}"
    )
    if len(tries) > 1:
        (warning,) = mh.retry_warnings(t0, "batch_to_bronze", until=run.ended)
        assert f"Spark application {app_name}" in warning, warning
    mh.assert_day_exact(run.day)
    mh.assert_every_log_readable(stack, run)


def test_producer_killed_midway_is_retried_from_the_start_and_the_day_stays_exact(stack, absorbed_faults):
    run, t0, victim = absorbed_faults.run, absorbed_faults.t0, absorbed_faults.victim
    day, server = run.day, KILLED_SERVER
    task_id = f"producer_{server}"
    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    tries = [t for t in stack.tries(run, task_id) if api.parse_time(t["start_date"]).timestamp() <= run.ended]
    assert [t["state"] for t in tries] == ["failed", "success"], tries
    # A rerun of a date clears its run, so the try numbers go on from that run's earlier tries.
    first_try, retry = tries[0]["try_number"], tries[1]["try_number"]
    first_name = f"tripclick-producer-{server}-{day}-try{first_try}"
    assert victim.name == first_name, victim.name
    died = [
        (e.get("name"), e.get("exitCode"))
        for e in stack.container_events(server, t0, run.ended)
        if e["action"] == "die"
    ]
    assert died[:1] == [(first_name, "137")], (
        f"the first try's container did not die of the kill (it may have finished first): {died}"
    )
    assert len(_landed_by(victim.id, day)) < len(helpers.landing_files(day))
    # The retry re-sent the day from the start, in a container of its own that was removed once it succeeded.
    assert died[1:] == [(f"tripclick-producer-{server}-{day}-try{retry}", "0")], died
    assert [c.name for c in stack.containers_for_day(server, day)] == [first_name]  # kept for inspection

    url = f"tcp://{config.HOST}:{config.PORTS[server]}"
    expected = (
        "container exited with code 137: killed by SIGKILL",
        f"where: container {first_name} on the Docker daemon {url}",
    )
    log1 = "\n".join(stack.airflow.log_lines(run.run_id, task_id, try_number=first_try))
    # The retry absorbed the fault, so no failure alert; the warning that the try will be retried says why.
    assert not mh.alerts_for(t0, task_id, until=run.ended), helpers.slack_texts(t0, run.ended)
    (warning,) = mh.retry_warnings(t0, task_id, until=run.ended)
    for text in expected:
        assert text in log1, (text, log1[-3000:])
        assert text in warning, (text, warning)
    assert f"(try {first_try} failed)" in warning, warning

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
    timeout_s = 10
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
        done = stack.dags_test_tries(day, task_id, t0)
        assert [t["state"] for t in done] == ["failed"] * tries, task_id
        numbers = sorted(t["try_number"] for t in done)
        # Every try's container was stopped on its daemon when its task timed out: none is left running.
        containers = stack.containers_for_day(server, day)
        assert sorted(c.name for c in containers) == [f"tripclick-producer-{server}-{day}-try{n}" for n in numbers]
        assert all(c.status == "exited" for c in containers), [(c.name, c.status) for c in containers]
        kills = [e for e in stack.container_events(server, t0) if e["action"] in ("kill", "stop")]
        assert {e.get("name") for e in kills} == {c.name for c in containers}, kills
        # Each try but the last warns that it will be retried; the last one alerts that the task failed.
        alerts = mh.retry_warnings(t0, task_id) + mh.alerts_for(t0, task_id)
        assert len(alerts) == tries and mh.alerts_for(t0, task_id) == alerts[-1:], helpers.slack_texts(t0)
        url = f"tcp://{config.HOST}:{config.PORTS[server]}"
        for n, alert in zip(numbers, alerts, strict=True):
            assert f"timed out: still running after its execution_timeout of 0:00:{timeout_s}" in alert, alert
            assert f"where: container tripclick-producer-{server}-{day}-try{n} on the Docker daemon {url}" in alert
    assert f"timed out: still running after its execution_timeout of 0:00:{timeout_s}" in out, out[-3000:]
    # The stream published what had landed; discard_partial_day deleted it with its checkpoint, so silver,
    # bronze and gold of the failed day are all absent.
    assert "discard_partial_day: deleted " in out, out[-3000:]
    mh.assert_day_absent(day)

    rerun = stack.run(day)
    assert rerun.state == "success", {t: ti["state"] for t, ti in rerun.tasks.items()}
    mh.assert_day_exact(day)
    mh.assert_every_log_readable(stack, rerun, since=rerun.started)


def test_two_dates_triggered_together_run_one_at_a_time_and_both_end_exact(stack):
    days = ("2020-08-13", "2020-08-14")
    for day in days:
        stack.reset_day(day)
        stack.generate(day)
    stack.airflow.wait_dag()
    run_ids = [stack.airflow.trigger(date.fromisoformat(day)) for day in days]
    ended = [stack.airflow.watch(run_id, timeout=2 * helpers.RUN_TIMEOUT) for run_id in run_ids]
    assert [r["state"] for r in ended] == ["success", "success"], ended
    # One active run at a time (max_active_runs=1): one of them started only after the other had ended.
    first, second = sorted(ended, key=lambda r: api.parse_time(r["start_date"]))
    assert api.parse_time(second["start_date"]) >= api.parse_time(first["end_date"]), (first, second)
    for day in days:
        mh.assert_day_exact(day)
    for run_id, day in zip(run_ids, days, strict=True):
        tasks = {ti["task_id"]: ti for ti in stack.airflow.tasks(run_id)}
        mh.assert_every_log_readable(stack, helpers.Run(day, run_id, "success", 0.0, tasks))


@contextmanager
def _full_disk(path: Path, size: str = "16k"):
    """A tiny tmpfs over `path` for the block: the first write that does not fit fails with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_full_landing_disk_fails_the_producers_naming_the_path_and_enospc(stack):
    day = "2020-08-16"
    stack.reset_day(day)
    stack.generate(day)
    landing = config.landing_dir() / f"event_date={day}"
    t0 = time.time()
    with _full_disk(landing):
        run = stack.run(day)
        # What landed lives on the small disk and goes with it.
        landed = {r["dedup_key"] for r in mh.landed_records(day)}
    assert run.state == "failed", {t: ti["state"] for t, ti in run.tasks.items()}
    tries = 1 + DEMO_POLICY["producer"]["retries"]
    cause = f"No space left on device (ENOSPC) in /app/landing/event_date={day}"
    for server in config.DOCKER_SERVERS:
        task_id = f"producer_{server}"
        done = stack.tries(run, task_id)
        assert [t["state"] for t in done] == ["failed"] * tries, task_id
        assert cause in run.log(task_id), run.log(task_id)[-3000:]
        (alert,) = mh.alerts_for(t0, task_id)
        assert cause in alert and "container exited with code 4" in alert, alert
        last = done[-1]["try_number"]
        assert f"where: container tripclick-producer-{server}-{day}-try{last}" in alert, alert
        assert len(mh.retry_warnings(t0, task_id)) == tries - 1
    assert landed, "nothing landed before the disk filled: the stream had nothing partial to publish"
    # What the stream published before the disk filled is gone with its checkpoint: every layer is absent.
    assert run.tasks["discard_partial_day"]["state"] == "success", run.tasks["discard_partial_day"]
    assert f"deleted {mh.silver_partition(day)}" in run.log("discard_partial_day")
    mh.assert_day_absent(day)
    mh.assert_every_log_readable(stack, run)

    rerun = stack.run(day)
    assert rerun.state == "success", {t: ti["state"] for t, ti in rerun.tasks.items()}
    mh.assert_day_exact(day)


def _spark_submit_of(app_name: str) -> list:
    """The spark-submit JVM of the named application (this stack's, by its --name)."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if "org.apache.spark.deploy.SparkSubmit" in cmd and app_name in cmd:
            found.append(p)
    return found


def test_batch_to_bronze_killed_after_writing_part_of_bronze_its_partial_day_is_discarded(stack):
    day = "2020-08-17"
    stack.reset_day(day)
    stack.generate(day)
    app_name = f"tripclick-batch_to_bronze-{day}"
    bronze = mh.bronze_partition(day)
    # One try, so the killed one is the last: the run is `airflow dags test` with its own policy.
    policy = {**DEMO_POLICY, "batch_to_bronze": {**DEMO_POLICY["batch_to_bronze"], "retries": 0}}
    t0 = time.time()
    pool = ThreadPoolExecutor(1)
    try:
        pending = pool.submit(stack.dags_test, day, extra_env={"AIRFLOW_VAR_TRIPCLICK_TASK_POLICY": json.dumps(policy)})
        # Once its driver has begun to write the day's bronze partition, the job dies as a lost pod would.
        victims = mh.wait_for(
            f"{app_name} writing {bronze}",
            lambda: bronze.exists() and _spark_submit_of(app_name),
            pending,
        )
        for victim in victims:
            victim.kill()
        result = pending.result()
    finally:
        pool.shutdown(wait=True)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    (tried,) = stack.dags_test_tries(day, "batch_to_bronze", t0)
    assert tried["state"] == "failed", tried
    (discard,) = stack.dags_test_tries(day, "discard_partial_day", t0)
    assert discard["state"] == "success", discard
    # The alert names what failed and where; the discard's log names what it deleted.
    (alert,) = mh.alerts_for(t0, "batch_to_bronze")
    assert f"where: Spark application {app_name}" in alert, alert
    for path in (mh.silver_partition(day), bronze):
        assert f"discard_partial_day: deleted {path}" in out, out[-3000:]
    mh.assert_day_absent(day)

    rerun = stack.run(day)
    assert rerun.state == "success", {t: ti["state"] for t, ti in rerun.tasks.items()}
    assert rerun.tasks["discard_partial_day"]["state"] == "skipped"
    mh.assert_day_exact(day)
    mh.assert_every_log_readable(stack, rerun, since=rerun.started)
