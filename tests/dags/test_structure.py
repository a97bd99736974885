"""The pipeline's shape: schedule, dependencies edge by edge, and when the waits release."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.dags.conftest import SCHEDULED, make_context

EXPECTED_EDGES = {
    ("preflight", "producer_server0"),
    ("preflight", "producer_server1"),
    ("preflight", "streaming_to_silver"),
    ("preflight", "wait_for_batch_to_bronze_window"),
    ("preflight", "wait_for_etl_to_gold_window"),
    ("producer_server0", "batch_to_bronze"),
    ("producer_server1", "batch_to_bronze"),
    ("streaming_to_silver", "batch_to_bronze"),
    ("wait_for_batch_to_bronze_window", "batch_to_bronze"),
    ("batch_to_bronze", "etl_to_gold"),
    ("wait_for_etl_to_gold_window", "etl_to_gold"),
    # A failed day's partial partitions are discarded once the stages that write them are done.
    ("producer_server0", "discard_partial_day"),
    ("producer_server1", "discard_partial_day"),
    ("streaming_to_silver", "discard_partial_day"),
    ("batch_to_bronze", "discard_partial_day"),
    # The summary waits for every stage, whatever their states.
    ("preflight", "notify_completion"),
    ("producer_server0", "notify_completion"),
    ("producer_server1", "notify_completion"),
    ("streaming_to_silver", "notify_completion"),
    ("batch_to_bronze", "notify_completion"),
    ("etl_to_gold", "notify_completion"),
    ("discard_partial_day", "notify_completion"),
}


def test_dependency_graph_edge_by_edge(dag):
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    assert edges == EXPECTED_EDGES


def _next_run(dag, earliest, catchup):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=catchup)
    return timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction).run_after


def test_runs_daily_at_1500_utc_one_at_a_time(dag):
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 15 * * *", "UTC")
    assert dag.max_active_runs == 1
    # With catchup the first run is the first 15:00 UTC at or after the earliest allowed time.
    assert _next_run(dag, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), catchup=True) == datetime(
        2026, 11, 26, 15, 0, tzinfo=UTC
    )
    assert _next_run(dag, datetime(2026, 11, 26, 15, 0, 1, tzinfo=UTC), catchup=True) == datetime(
        2026, 11, 27, 15, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Deployed in the morning: the scheduler first runs yesterday's 15:00 day, straight away.
        (datetime(2031, 6, 15, 9, 0, tzinfo=UTC), datetime(2031, 6, 14, 15, 0, tzinfo=UTC)),
        # Deployed after 15:00: today's day runs straight away.
        (datetime(2031, 6, 15, 16, 30, tzinfo=UTC), datetime(2031, 6, 15, 15, 0, tzinfo=UTC)),
    ],
)
def test_without_catchup_the_first_run_is_the_latest_due_day_not_the_start_date(dag, now, expected):
    import time_machine

    with time_machine.travel(now, tick=False):
        assert _next_run(dag, dag.start_date, catchup=dag.catchup) == expected


def _render_target(dag, task_id, logical_date, run_after=None):
    from airflow.sdk.execution_time.context import MacrosAccessor

    task = dag.get_task(task_id)
    context = make_context(task, logical_date=logical_date, run_after=run_after)
    context["macros"] = MacrosAccessor()
    rendered = task.render_template(task.target_time, context, dag.get_template_env())
    return datetime.fromisoformat(rendered)


@pytest.mark.parametrize(
    ("task_id", "hours"), [("wait_for_batch_to_bronze_window", 2), ("wait_for_etl_to_gold_window", 3)]
)
def test_waits_release_relative_to_the_scheduled_time(dag, task_id, hours):
    assert _render_target(dag, task_id, SCHEDULED) == SCHEDULED + timedelta(hours=hours)


def test_backfill_of_an_old_date_waits_for_its_own_day_not_today(dag):
    """The target is the old day's 18:00, whatever the run's own trigger time (always in the past)."""
    old = datetime(2019, 3, 4, 15, 0, tzinfo=UTC)
    triggered = datetime(2031, 6, 15, 9, 30, tzinfo=UTC)
    target = _render_target(dag, "wait_for_etl_to_gold_window", old, run_after=triggered)
    assert target == datetime(2019, 3, 4, 18, 0, tzinfo=UTC)


def test_manual_run_without_logical_date_waits_from_its_trigger_time(dag):
    triggered = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert _render_target(dag, "wait_for_batch_to_bronze_window", None, run_after=triggered) == triggered + timedelta(
        hours=2
    )


@dataclass(frozen=True)
class _TaskInstance:
    task_id: str
    state: str


def test_summary_runs_whatever_happened_and_does_not_decide_the_runs_state(dag):
    from airflow.task.trigger_rule import TriggerRule

    notify = dag.get_task("notify_completion")
    assert notify.is_teardown and not notify.on_failure_fail_dagrun
    assert notify.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert not [t.task_id for t in dag.tasks if t.is_setup], "a setup task would make the summary depend on it"
    # The task instances the scheduler's own rule counts for the run's state: the last stage only.
    from airflow.models.dagrun import DagRun

    tis = [_TaskInstance(t.task_id, "failed") for t in dag.tasks]
    counted = DagRun._tis_for_dagrun_state(None, dag=dag, tis=tis)
    assert {ti.task_id for ti in counted} == {"etl_to_gold"}


def test_waits_start_in_the_triggerer_and_end_on_a_worker(dag):
    for task_id in ("wait_for_batch_to_bronze_window", "wait_for_etl_to_gold_window"):
        task = dag.get_task(task_id)
        assert type(task).__name__ == "DateTimeSensorAsync"
        assert task.start_from_trigger is True
        assert task.end_from_trigger is False
        # What the triggerer renders and hands to the trigger: the same template as the target time.
        assert task.start_trigger_args.trigger_kwargs == {"target_time": task.target_time, "end_from_trigger": False}


def test_event_date_is_the_utc_date_of_the_scheduled_time(dag):
    from tripclick.run_context import event_date

    late = datetime(2020, 10, 1, 23, 59, tzinfo=UTC)
    assert event_date(make_context(dag.get_task("preflight"), logical_date=late)) == "2020-10-01"
    kst_midnight = datetime.fromisoformat("2020-10-02T00:00:00+09:00")
    assert event_date(make_context(dag.get_task("preflight"), logical_date=kst_midnight)) == "2020-10-01"


def test_spark_tasks_use_host_network_and_node_ip_others_do_not(dag):
    for task in dag.tasks:
        spec = task.executor_config["pod_override"].spec
        container = spec.containers[0]
        assert container.name == "base"
        assert container.resources.requests and container.resources.limits, task.task_id
        if task.task_id in ("streaming_to_silver", "batch_to_bronze", "etl_to_gold", "discard_partial_day"):
            assert spec.host_network is True
            assert spec.dns_policy == "ClusterFirstWithHostNet"
            env = {e.name: e for e in container.env}
            assert env["SPARK_DRIVER_HOST"].value_from.field_ref.field_path == "status.hostIP"
        else:
            assert not spec.host_network, task.task_id
        if task.task_id in ("streaming_to_silver", "batch_to_bronze", "etl_to_gold", "discard_partial_day"):
            # Room for what spark-submit fetches (--packages), away from the image's home.
            assert {e.name for e in container.env} >= {"TRIPCLICK_SPARK_IVY_DIR"}, task.task_id
            assert [v.name for v in spec.volumes] == ["spark-ivy"], task.task_id
