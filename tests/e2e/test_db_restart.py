"""The metadata database restarts while the day's stream is running: the running tasks ride it out (the task
SDK and our REST client retry a 5xx), a component that exits for it is started again (the kubelet on k3s, the
stack's supervisor here), and the day completes exact with no task retried for it."""

from __future__ import annotations

import time
from datetime import date

from demo.stack import airflow as stack_airflow
from demo.stack import proc
from demo.stack.services import Postgres
from tests.e2e import helpers
from tests.e2e import midflight_helpers as mh


def test_metadata_db_restarted_while_the_stream_runs_the_day_completes_exact(stack):
    day = "2020-08-17"
    stack.reset_day(day)
    stack.generate(day)
    db = Postgres()
    control_plane = {c.name: c.pid() for c in stack_airflow.components()}
    assert all(control_plane.values()), control_plane
    t0 = time.time()
    with mh.run_in_background(stack, day) as pending:

        def streaming():
            run = stack.airflow.run_for_date(date.fromisoformat(day))
            if not run or not run.get("start_date") or helpers.api.parse_time(run["start_date"]).timestamp() < t0:
                return None
            states = {ti["task_id"]: ti["state"] for ti in stack.airflow.tasks(run["dag_run_id"])}
            return run["dag_run_id"] if states.get("streaming_to_silver") == "running" else None

        mh.wait_for("streaming_to_silver running", streaming, pending)
        old_pid = db.pid()
        restarted_at = time.time()
        new_pid = db.restart()
        run = pending.result()

    assert new_pid != old_pid
    assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
    stream = run.tasks["streaming_to_silver"]
    # The restart fell inside the stream's run, so the stream's own calls to the execution API crossed it.
    assert helpers.api.parse_time(stream["end_date"]).timestamp() > restarted_at, stream
    tries = {task_id: len(stack.tries(run, task_id)) for task_id in run.tasks}
    retried = {task_id: n for task_id, n in tries.items() if n > 1}
    assert not retried, f"tasks retried after the metadata database restarted: {retried}"
    assert not [alert for task_id in run.tasks for alert in mh.alerts_for(t0, task_id)], helpers.slack_texts(t0)
    # Every component is back: its supervisor is the one that was running before, and it reports healthy.
    assert {c.name: c.pid() for c in stack_airflow.components()} == control_plane
    for component in stack_airflow.components():
        proc.wait_for(component.name, component.healthy, timeout=120, pid=component.pid(), log=component.log)
    mh.assert_day_exact(day)
    mh.assert_every_log_readable(stack, run)
