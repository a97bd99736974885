"""Faults: each one fails clearly, alerts Slack, and writes nothing downstream of where it failed."""

from __future__ import annotations

import time

from demo.stack import config
from tests.e2e import helpers

PRODUCERS = ("producer_server0", "producer_server1")


def _assert_stopped_at_preflight(stack, run, day):
    assert run.state == "failed"
    assert run.tasks["preflight"]["state"] == "failed"
    for task_id in (*PRODUCERS, "streaming_to_silver", "batch_to_bronze", "etl_to_gold"):
        assert run.tasks[task_id]["state"] == "upstream_failed", task_id
    for server in config.DOCKER_SERVERS:
        if stack.docker(server).pid():
            assert not stack.container_events(server, run.started), f"a container ran on {server}"
    assert not helpers.api.lake_partition("silver", day).exists()
    helpers.assert_nothing_downstream(day)
    alerts = [t for t in helpers.slack_texts(run.started) if "*preflight* failed" in t]
    assert len(alerts) == 1 and f"date: {day}" in alerts[0], helpers.slack_texts(run.started)


def test_docker_daemon_stopped_fails_preflight_naming_server_and_address(stack):
    day = "2020-08-01"
    stack.reset_day(day)
    stack.generate(day)
    daemon = stack.docker("server1")
    daemon.down()
    try:
        run = stack.run(day)
    finally:
        daemon.up()
    _assert_stopped_at_preflight(stack, run, day)
    log = run.log("preflight")
    assert f"server1: Docker daemon at tcp://127.0.0.1:{config.PORTS['server1']} did not answer" in log
    assert "server0: Docker daemon" not in log


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
    _assert_stopped_at_preflight(stack, run, day)
    assert f"Spark master at 127.0.0.1:{config.PORTS['spark_master']} does not accept connections" in run.log(
        "preflight"
    )


def test_producer_exiting_non_zero_is_retried_then_fails_the_run(stack):
    day = "2020-08-03"
    stack.reset_day(day)
    generated = stack.generate(day)
    # server1 has no file for the day: its producer exits 3 with a message naming the file.
    missing = config.server_data_dir("server1") / f"date={day}" / "events.json"
    missing.unlink()
    run = stack.run(day)
    assert run.state == "failed"
    assert run.tasks["producer_server0"]["state"] == "success"
    assert run.tasks["producer_server1"]["state"] == "failed"
    tries = [
        t
        for t in stack.airflow.tries(helpers.DAG_ID, run.run_id, "producer_server1")
        if t["start_date"] and helpers.api.parse_time(t["start_date"]).timestamp() >= run.started
    ]
    assert [t["state"] for t in tries] == ["failed", "failed"]  # 1 retry in the demo's task policy
    assert f"input file /app/data/date={day}/events.json does not exist" in run.log("producer_server1")
    assert run.tasks["batch_to_bronze"]["state"] == "upstream_failed"
    assert run.tasks["etl_to_gold"]["state"] == "upstream_failed"
    helpers.assert_nothing_downstream(day)
    # The failed containers are kept on server1 for inspection; nothing of server1's leaked to server0.
    assert all(e.get("org.tripclick.server") == "server0" for e in stack.container_events("server0", run.started))
    alerts = [t for t in helpers.slack_texts(run.started) if "*producer_server1* failed" in t]
    assert len(alerts) == 1 and f"try: {tries[-1]['try_number']}" in alerts[0], helpers.slack_texts(run.started)
    assert generated["servers"]["server1"]["events"] > 0


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
    assert [t for t in helpers.slack_texts(t0) if "*preflight* failed" in t]


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
    assert [t for t in helpers.slack_texts(t0) if "*preflight* failed" in t]
