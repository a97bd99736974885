"""discard_partial_day: what a failed day's partial partitions are, and that a whole day leaves them alone."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from tests.dags.conftest import make_context

WATCHED = ("producer_server0", "producer_server1", "streaming_to_silver", "batch_to_bronze")
WHOLE_DAY = dict.fromkeys(WATCHED, "success")
SILVER_ARGS = ["--layer", "silver"]
BOTH_ARGS = ["--layer", "silver", "--layer", "bronze"]


def _bind(dag, states: dict[str, str | None]):
    """The task bound by its pre_execute hook in a run whose upstream stages ended in `states`."""
    task = copy.deepcopy(dag.get_task("discard_partial_day"))
    context = make_context(task)
    asked = {}

    def get_task_states(dag_id, task_ids, run_ids):
        asked.update(dag_id=dag_id, task_ids=sorted(task_ids), run_ids=run_ids)
        return {run_ids[0]: {t: s for t, s in states.items() if t in task_ids}}

    context["ti"] = SimpleNamespace(**vars(context["ti"]), run_id="r1", get_task_states=get_task_states)
    task._pre_execute_hook(context)
    assert asked == {"dag_id": "tripclick_daily_pipeline", "task_ids": sorted(WATCHED), "run_ids": ["r1"]}
    return task


def _layers(task) -> list[str]:
    args = task.application_args
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--layer"]


def test_a_whole_day_skips_the_task(dag):
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="nothing to discard for 2020-10-01: the day is whole"):
        _bind(dag, WHOLE_DAY)


@pytest.mark.parametrize(
    "states",
    [
        # A producer hung until its timeout or hit a full disk: the stream published what had landed.
        {**WHOLE_DAY, "producer_server1": "failed", "batch_to_bronze": "upstream_failed"},
        {**WHOLE_DAY, "producer_server0": "failed", "producer_server1": "failed", "batch_to_bronze": "upstream_failed"},
        # The stream itself died midway.
        {**WHOLE_DAY, "streaming_to_silver": "failed", "batch_to_bronze": "upstream_failed"},
    ],
)
def test_a_failed_producer_or_stream_discards_silver_and_its_checkpoint_not_bronze(dag, states):
    task = _bind(dag, states)
    assert _layers(task) == ["silver"]
    assert task.application == "/opt/airflow/dags/repo/workloads/spark/discard_partial_day.py"
    assert task.application_args[:6] == [
        "--date",
        "2020-10-01",
        "--silver-path",
        "s3a://tripclick-lake-dev/silver",
        "--bronze-path",
        "s3a://tripclick-lake-dev/bronze",
    ]


def test_a_failed_batch_to_bronze_discards_bronze_and_silver(dag):
    task = _bind(dag, {**WHOLE_DAY, "batch_to_bronze": "failed"})
    assert _layers(task) == ["silver", "bronze"]


def test_nothing_of_the_run_wrote_to_the_lake_skips_the_task(dag):
    """Preflight failed: no stage ran, so an earlier run's partitions of the date are not this run's to delete."""
    from airflow.sdk.exceptions import AirflowSkipException

    states = dict.fromkeys(WATCHED, "upstream_failed")
    with pytest.raises(AirflowSkipException, match="no task of this run wrote to the lake"):
        _bind(dag, states)


def test_the_streams_own_checkpoint_path_is_the_one_discarded(dag, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_VAR_TRIPCLICK_SPARK_JOBS",
        '{"streaming_to_silver": {"extra_args": ["--checkpoint-path", "s3a://ckpt/stream"]}}',
    )
    task = _bind(dag, {**WHOLE_DAY, "producer_server0": "failed", "batch_to_bronze": "upstream_failed"})
    assert task.application_args[-2:] == ["--checkpoint-path", "s3a://ckpt/stream"]


def test_it_runs_in_local_mode_and_takes_no_cluster_core(dag):
    task = _bind(dag, {**WHOLE_DAY, "batch_to_bronze": "failed"})
    command = task._get_hook()._build_spark_submit_command(task.application)
    assert command[command.index("--master") + 1] == "local[1]"
    assert not [arg for arg in command if arg.startswith(("spark.cores.max=", "spark.driver.host="))]


def test_runs_after_the_stages_it_repairs_whatever_their_states(dag):
    from airflow.task.trigger_rule import TriggerRule

    task = dag.get_task("discard_partial_day")
    assert task.upstream_task_ids == set(WATCHED)
    assert task.downstream_task_ids == {"notify_completion"}
    # A teardown with no setup task: it runs once every upstream is done, whatever their states, and its own
    # state does not decide the run's (etl_to_gold's does; tests/dags/test_structure.py).
    assert task.is_teardown and not task.on_failure_fail_dagrun
    assert task.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert not dag.get_task("etl_to_gold").downstream_task_ids - {"notify_completion"}


@pytest.mark.parametrize(
    ("states", "layers"),
    [
        (WHOLE_DAY, ()),
        ({**WHOLE_DAY, "producer_server0": "failed", "batch_to_bronze": "upstream_failed"}, ("silver",)),
        ({**WHOLE_DAY, "streaming_to_silver": "failed", "batch_to_bronze": "upstream_failed"}, ("silver",)),
        ({**WHOLE_DAY, "batch_to_bronze": "failed"}, ("silver", "bronze")),
        (dict.fromkeys(WATCHED, "upstream_failed"), ()),
    ],
)
def test_layers_to_discard(states, layers):
    from tripclick.discard import layers_to_discard

    assert layers_to_discard(states) == layers
