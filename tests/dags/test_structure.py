"""The pipeline's shape: schedule, dependencies edge by edge, and when the waits release."""

from __future__ import annotations

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
    ("etl_to_gold", "notify_completion"),
}


def test_dependency_graph_edge_by_edge(dag):
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    assert edges == EXPECTED_EDGES


def test_runs_daily_at_1500_utc_one_at_a_time(dag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 15 * * *", "UTC")
    timetable = coerce_to_core_timetable(dag.timetable)
    after = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction(after))
    assert info.run_after == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def _restriction(earliest):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=earliest, latest=None, catchup=False)


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


def test_backfill_of_an_old_date_does_not_wait(dag):
    old = datetime(2019, 3, 4, 15, 0, tzinfo=UTC)
    target = _render_target(dag, "wait_for_etl_to_gold_window", old)
    assert target == datetime(2019, 3, 4, 18, 0, tzinfo=UTC)
    assert target < datetime.now(UTC)


def test_manual_run_without_logical_date_waits_from_its_trigger_time(dag):
    triggered = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert _render_target(dag, "wait_for_batch_to_bronze_window", None, run_after=triggered) == triggered + timedelta(
        hours=2
    )


def test_waits_are_deferrable_and_end_in_the_triggerer(dag):
    for task_id in ("wait_for_batch_to_bronze_window", "wait_for_etl_to_gold_window"):
        task = dag.get_task(task_id)
        assert type(task).__name__ == "DateTimeSensorAsync"
        assert task.end_from_trigger is True


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
        if task.task_id in ("streaming_to_silver", "batch_to_bronze", "etl_to_gold"):
            assert spec.host_network is True
            assert spec.dns_policy == "ClusterFirstWithHostNet"
            (env,) = container.env
            assert (env.name, env.value_from.field_ref.field_path) == ("SPARK_DRIVER_HOST", "status.hostIP")
        else:
            assert not spec.host_network, task.task_id
