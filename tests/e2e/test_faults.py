"""Faults: each one fails clearly, alerts Slack, writes nothing downstream of where it failed, and the day's
summary says which stages failed and which never ran. A service that is not ready is retried; a configuration
problem fails its task at once."""

from __future__ import annotations

import time

import pytest

from demo.stack import config, settings
from tests.e2e import helpers
from tests.e2e.conftest import DAEMON_DOWN_SERVER

PRODUCERS = ("producer_server0", "producer_server1")
AFTER_PREFLIGHT = (*PRODUCERS, "streaming_to_silver", "batch_to_bronze", "etl_to_gold")
DEMO_POLICY = settings.task_policy()
# Tries of a preflight that keeps failing for a service fault, with the demo's task policy.
PREFLIGHT_TRIES = 1 + DEMO_POLICY["preflight"]["retries"]


def _one_alert(since: float, task_id: str, until: float | None = None) -> str:
    alerts = [t for t in helpers.slack_texts(since, until) if f"*{task_id}* failed" in t]
    assert len(alerts) == 1, helpers.slack_texts(since, until)
    return alerts[0]


def _assert_summary(run, day: str, groups: dict[str, set[str]], states: dict[str, str]) -> None:
    """One summary for the run, its first line grouping the stages, one line per stage; the run stays failed
    even though notify_completion itself succeeded."""
    assert run.state == "failed"
    assert run.tasks["notify_completion"]["state"] == "success"
    found = helpers.summaries(run.started, day, run.ended)
    assert len(found) == 1, helpers.slack_texts(run.started, run.ended)
    assert helpers.summary_groups(found[0], day) == groups, found[0]
    assert helpers.summary_states(found[0]) == states, found[0]


def _assert_producers_failed_summary(run, day: str, failed: set[str]) -> None:
    """The producers in `failed` failed, so bronze and gold never ran; the stream ran, so what it published of
    the failed day was discarded, and the summary says all of that."""
    _assert_summary(
        run,
        day,
        {"failed": failed, "not run": {"batch_to_bronze", "etl_to_gold"}},
        {
            "preflight": "success",
            **{p: "failed" if p in failed else "success" for p in PRODUCERS},
            "streaming_to_silver": "success",
            "batch_to_bronze": "upstream_failed",
            "etl_to_gold": "upstream_failed",
            "discard_partial_day": "success",
        },
    )
    assert not helpers.api.lake_partition("silver", day).exists(), "the failed day's partial silver is left"


def _assert_stopped_at_preflight(stack, run, day, *, tries: int) -> str:
    """Preflight failed after `tries` tries; nothing after it ran. Returns the preflight alert."""
    assert run.state == "failed"
    assert run.tasks["preflight"]["state"] == "failed"
    for task_id in AFTER_PREFLIGHT:
        assert run.tasks[task_id]["state"] == "upstream_failed", task_id
    preflight_tries = stack.tries(run, "preflight")
    assert [t["state"] for t in preflight_tries] == ["failed"] * tries, preflight_tries
    for server in config.DOCKER_SERVERS:
        if stack.docker(server).pid():
            assert not stack.container_events(server, run.started, run.ended), f"a container ran on {server}"
    assert not helpers.api.lake_partition("silver", day).exists()
    helpers.assert_nothing_downstream(day)
    alert = _one_alert(run.started, "preflight", run.ended)
    assert f"date: {day}" in alert and f"try: {preflight_tries[-1]['try_number']}" in alert, alert
    _assert_summary(
        run,
        day,
        {"failed": {"preflight"}, "not run": set(AFTER_PREFLIGHT)},
        # Nothing of the run reached the lake: nothing to discard.
        {"preflight": "failed", **dict.fromkeys(AFTER_PREFLIGHT, "upstream_failed"), "discard_partial_day": "skipped"},
    )
    return alert


def test_docker_daemon_stopped_fails_preflight_naming_server_and_address(stack, daemon_down_day):
    run, day = daemon_down_day, daemon_down_day.day
    # A daemon that is down may be back by the next try: preflight keeps its retries.
    alert = _assert_stopped_at_preflight(stack, run, day, tries=PREFLIGHT_TRIES)
    assert helpers.NOT_RETRIED not in alert
    log = run.log("preflight")
    assert (
        f"{DAEMON_DOWN_SERVER}: Docker daemon at tcp://127.0.0.1:{config.PORTS[DAEMON_DOWN_SERVER]} did not answer"
        in log
    )
    up = next(s for s in config.DOCKER_SERVERS if s != DAEMON_DOWN_SERVER)
    assert f"{up}: Docker daemon" not in log


def test_spark_master_down_fails_preflight(stack):
    day = "2020-08-02"
    stack.reset_day(day)
    stack.generate(day)
    master, worker = stack.spark()
    worker.down()
    master.down()
    try:
        run = stack.run(day)
    finally:
        master.up()
        worker.up()
    _assert_stopped_at_preflight(stack, run, day, tries=PREFLIGHT_TRIES)
    assert f"Spark master at 127.0.0.1:{config.PORTS['spark_master']} does not accept connections" in run.log(
        "preflight"
    )


def test_spark_master_without_alive_worker_fails_preflight(stack):
    day = "2020-08-06"
    stack.reset_day(day)
    stack.generate(day)
    _, worker = stack.spark()
    worker.down()
    try:
        stack.wait_no_alive_spark_worker()
        run = stack.run(day)
    finally:
        worker.up()
    _assert_stopped_at_preflight(stack, run, day, tries=PREFLIGHT_TRIES)
    log = run.log("preflight")
    assert f"spark: Spark master at 127.0.0.1:{config.PORTS['spark_master']} has no ALIVE worker" in log
    assert "does not accept connections" not in log  # the master itself was up


@pytest.fixture(scope="module")
def failed_producer_run(stack):
    """server1 has no file for the day: its producer exits 3 with a message naming the file, on every try."""
    day = "2020-08-03"
    stack.reset_day(day)
    generated = stack.generate(day)
    assert generated["servers"]["server1"]["events"] > 0
    (config.server_data_dir("server1") / f"date={day}" / "events.json").unlink()
    run = stack.run(day)
    return run, stack.tries(run, "producer_server1")


def test_producer_exiting_non_zero_is_retried_then_fails_the_run(stack, failed_producer_run):
    run, tries = failed_producer_run
    day = run.day
    assert run.state == "failed"
    assert run.tasks["producer_server0"]["state"] == "success"
    assert run.tasks["producer_server1"]["state"] == "failed"
    assert [t["state"] for t in tries] == ["failed"] * (1 + DEMO_POLICY["producer"]["retries"])
    assert f"input file /app/data/date={day}/events.json does not exist" in run.log("producer_server1")
    assert run.tasks["batch_to_bronze"]["state"] == "upstream_failed"
    assert run.tasks["etl_to_gold"]["state"] == "upstream_failed"
    helpers.assert_nothing_downstream(day)
    alert = _one_alert(run.started, "producer_server1")
    assert f"try: {tries[-1]['try_number']}" in alert and helpers.NOT_RETRIED not in alert, alert
    _assert_producers_failed_summary(run, day, {"producer_server1"})


def test_failed_producer_containers_are_kept_on_their_server_for_inspection(stack, failed_producer_run):
    run, tries = failed_producer_run
    day = run.day
    # server0's container succeeded and was removed (auto_remove="success"); nothing of server1's ran there.
    events0 = stack.container_events("server0", run.started)
    assert [e["action"] for e in events0 if e["action"] in ("start", "die", "destroy")] == ["start", "die", "destroy"]
    assert [e.get("exitCode") for e in events0 if e["action"] == "die"] == ["0"]
    assert {e.get("org.tripclick.server") for e in events0} == {"server0"}, events0
    assert stack.containers_for_day("server0", day) == []
    # server1's failed tries' containers are still there, one per try, named and labelled as the DAG starts
    # them, exited with the producer's code.
    kept = stack.containers_for_day("server1", day)
    names = [f"tripclick-producer-server1-{day}-try{t['try_number']}" for t in tries]
    removed = [e.get("name") for e in stack.container_events("server1", run.started) if e["action"] == "destroy"]
    assert sorted(c.name for c in kept) == sorted(names), f"removed from server1: {removed}"
    for container in kept:
        state = container.attrs["State"]
        assert container.status == "exited" and state["ExitCode"] == 3, (container.name, state)
        labels = container.labels
        assert labels.get("org.tripclick.server") == "server1" and labels.get("org.tripclick.event-date") == day
        assert helpers.api.parse_time(container.attrs["Created"]).timestamp() >= run.started - 1


def test_malformed_variable_fails_preflight_once_without_retries(stack):
    # A real run through the scheduler, so the retry policy is the one production applies.
    assert PREFLIGHT_TRIES > 1, "the demo policy must retry preflight, or one try proves nothing"
    day = "2020-08-07"
    stack.reset_day(day)
    stack.generate(day)
    with stack.variables(tripclick_preflight_skip='["docker:server0"'):
        run = stack.run(day)
    alert = _assert_stopped_at_preflight(stack, run, day, tries=1)
    assert "Variable 'tripclick_preflight_skip' is not valid JSON" in run.log("preflight")
    assert "Variable 'tripclick_preflight_skip' is not valid JSON" in alert
    assert helpers.NOT_RETRIED in alert.splitlines(), alert


def test_malformed_variable_fails_each_producer_once_without_retries(stack):
    assert DEMO_POLICY["producer"]["retries"] >= 1, "the demo policy must retry producers, or one try proves nothing"
    day = "2020-08-08"
    stack.reset_day(day)
    stack.generate(day)
    # Preflight is told to skip the Docker checks, so the producers' own binding meets the bad Variable.
    with stack.variables(
        tripclick_preflight_skip='["docker:server0", "docker:server1"]', tripclick_docker_allow_plain_tcp="maybe"
    ):
        run = stack.run(day)
    assert run.state == "failed"
    assert run.tasks["preflight"]["state"] == "success"
    for task_id in PRODUCERS:
        assert run.tasks[task_id]["state"] == "failed", task_id
        assert [t["state"] for t in stack.tries(run, task_id)] == ["failed"], task_id
        assert "Variable 'tripclick_docker_allow_plain_tcp' must be true or false, got 'maybe'" in run.log(task_id)
        assert helpers.NOT_RETRIED in _one_alert(run.started, task_id).splitlines()
    for server in config.DOCKER_SERVERS:
        assert not stack.container_events(server, run.started), f"a container ran on {server}"
    helpers.assert_nothing_downstream(day)
    _assert_producers_failed_summary(run, day, set(PRODUCERS))


def test_producer_image_missing_on_one_daemon_fails_preflight_naming_it(stack):
    day = "2020-08-09"
    stack.reset_day(day)
    stack.generate(day)
    tag = "e2e-only-on-server0"
    repository = settings.variables()["tripclick_producer_image"]
    image = f"{repository}:{tag}"
    client0, client1 = stack.docker("server0").client(), stack.docker("server1").client()
    try:
        client0.images.get(settings.producer_ref()).tag(repository, tag)
        assert not client1.images.list(name=image), f"{image} is on server1"
        t0 = time.time()
        result = stack.dags_test(day, extra_env={"AIRFLOW_VAR_TRIPCLICK_PRODUCER_TAG": tag})
    finally:
        client0.images.remove(image)  # only the extra tag: the image keeps its real one
        client0.close()
        client1.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    url1 = f"tcp://127.0.0.1:{config.PORTS['server1']}"
    assert f"server1: image {image} is not on the Docker daemon at {url1}" in out, out[-3000:]
    assert "server0: image" not in out and "server0: Docker daemon" not in out
    for server in config.DOCKER_SERVERS:
        assert not stack.container_events(server, t0), f"a container ran on {server}"
    helpers.assert_nothing_downstream(day)
    alert = _one_alert(t0, "preflight")
    assert f"server1: image {image} is not on the Docker daemon at {url1}" in alert, alert


def test_untrusted_client_certificate_fails_preflight(stack):
    day = "2020-08-04"
    stack.reset_day(day)
    stack.generate(day)
    t0 = time.time()
    result = stack.dags_test(day, extra_env={"AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR": str(config.untrusted_tls_dir())})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    for server in config.DOCKER_SERVERS:
        assert f"{server}: Docker daemon at tcp://127.0.0.1:{config.PORTS[server]} did not answer over TLS" in out
        assert not stack.container_events(server, t0)
    helpers.assert_nothing_downstream(day)
    _one_alert(t0, "preflight")


def test_missing_connection_fails_preflight_with_how_to_fix(stack):
    day = "2020-08-05"
    stack.reset_day(day)
    stack.generate(day)
    t0 = time.time()
    result = stack.dags_test(day, unset=("AIRFLOW_CONN_DOCKER_SERVER1",))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "Connection 'docker_server1' is not defined" in out
    assert "AIRFLOW_CONN_DOCKER_SERVER1" in out
    for server in config.DOCKER_SERVERS:
        assert not stack.container_events(server, t0)
    helpers.assert_nothing_downstream(day)
    alert = _one_alert(t0, "preflight")
    assert "Connection 'docker_server1' is not defined" in alert and helpers.NOT_RETRIED in alert.splitlines()
    # `airflow dags test` retries like the scheduler (a service fault gets its retries there too): one try here.
    assert PREFLIGHT_TRIES > 1
    assert [t["state"] for t in stack.dags_test_tries(day, "preflight", t0)] == ["failed"]
