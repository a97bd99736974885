"""tripclick_daily_pipeline: one TripClick day, from the web servers' producers to the gold marts.

Parsing this file needs no Variable, Connection or network except the task policy (retries and
timeouts); every host, port, image, path and Spark setting is resolved when its task starts
(see dags/tripclick/).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, AsyncCallback, CronTriggerTimetable, DeadlineAlert, DeadlineReference

from tripclick.config import SPARK_CONN_ID, SPARK_JOBS, WEB_SERVERS
from tripclick.deadline import gold_late
from tripclick.discard import bind_discard
from tripclick.notify import alert_failure, alert_retry, record_stage_timing, send_completion_summary
from tripclick.pod_overrides import spark_driver_pod, task_pod
from tripclick.policy import load_policy
from tripclick.preflight import run_preflight
from tripclick.producers import bind_producer, finish_producer
from tripclick.run_context import wait_target_template
from tripclick.spark_jobs import TripclickSparkSubmitOperator, bind_spark_job

DOC_MD = """
### TripClick daily pipeline

Runs every day at **15:00 UTC** (00:00 KST) for `event_date` = the UTC date of the scheduled time.

1. `preflight` checks both Docker daemons (mutual TLS, producer image present), the Spark master and
   the Slack connection, and fails with one message listing every problem.
2. `producer_server0`, `producer_server1` (containers on the web servers' Docker daemons) and
   `streaming_to_silver` start together, so the stream is already reading when the first event is sent.
3. `batch_to_bronze` starts when both producers and the stream are done, not before scheduled time + 2 h.
4. `etl_to_gold` starts after bronze, not before scheduled time + 3 h.
5. `discard_partial_day` runs once the producers, the stream and bronze are done. On a day where one of
   them failed it deletes what they left half-written (silver of the day and its streaming checkpoint;
   bronze too when `batch_to_bronze` failed), so every layer is exact or absent and a plain rerun of the
   date makes it exact; on a whole day it is skipped.
6. `notify_completion` posts the day's summary to Slack once every stage is done, whatever happened:
   which stages failed, were skipped or never ran. Any failed task also posts its own alert, and a try
   that will be retried a warning (what failed, where); a configuration problem (missing Connection,
   malformed Variable) fails its task without retries. Every message also goes by email when Variable
   `tripclick_alert_email_to` names recipients (server: Connection `smtp_alerts`).

The waits are deferrable and relative to the scheduled time: a rerun or a backfill of an old date does
not wait. **Retries re-send events**: a realtime producer retried midway replays the day from the
start, so Kafka receives some events twice; `streaming_to_silver` deduplicates on `dedup_key`, and so
silver and gold stay exact. Retries, delays, timeouts and wait offsets come from Variable
`tripclick_task_policy`; everything else from the `tripclick_*` Variables and the Connections
`docker_server0`, `docker_server1`, `spark_cluster`, `slack_webhook` (see docs/configuration.md).
"""

policy = load_policy()

with DAG(
    dag_id="tripclick_daily_pipeline",
    description="TripClick day: producers on the web servers, Spark to silver, bronze and gold, Slack report",
    doc_md=DOC_MD,
    schedule=CronTriggerTimetable("0 15 * * *", timezone="UTC"),
    # The first day of the TripClick log; with catchup off this only bounds manual backfills.
    start_date=datetime(2013, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    # Measured from the logical date, never from queued_at: clearing a run whose deadline is measured from
    # queued_at fails in Airflow 3.3.2 (docs/monitoring.md).
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=policy.gold_deadline,
        callback=AsyncCallback(gold_late),
        name="gold_marts_late",
    ),
    tags=["tripclick", "daily", "docker", "spark"],
    default_args={"owner": "data-platform", "on_failure_callback": alert_failure, "on_retry_callback": alert_retry},
) as dag:
    preflight = PythonOperator(
        task_id="preflight",
        python_callable=run_preflight,
        post_execute=record_stage_timing,
        executor_config=task_pod(policy["preflight"].pod),
        **policy["preflight"].operator_kwargs(),
    )

    producers = [
        DockerOperator(
            task_id=f"producer_{server}",
            # Image, command, environment, mounts, daemon URL and TLS are set by bind_producer.
            image="",
            pre_execute=partial(bind_producer, server),
            post_execute=finish_producer,
            # The provider's "success" also removes a failed container; a failed one stays on its
            # server for inspection, and finish_producer removes it once the task succeeded.
            auto_remove="never",
            mount_tmp_dir=False,
            do_xcom_push=False,
            executor_config=task_pod(policy["producer"].pod),
            **policy["producer"].operator_kwargs(),
        )
        for server in WEB_SERVERS
    ]

    spark = {
        job: TripclickSparkSubmitOperator(
            task_id=job,
            conn_id=SPARK_CONN_ID,
            deploy_mode="client",
            # Application, arguments and conf are set by bind_spark_job.
            application="",
            pre_execute=partial(bind_spark_job, job),
            post_execute=record_stage_timing,
            executor_config=spark_driver_pod(policy[job].pod),
            **policy[job].operator_kwargs(),
        )
        for job in SPARK_JOBS
    }

    # The waits start in the triggerer and hold no pod while they wait (none at the 15:00 peak); they
    # end on a worker because Airflow refuses end_from_trigger once any listener plugin is installed
    # (OpenLineage is one), which would turn this file into an import error.
    waits = {
        job: DateTimeSensorAsync(
            task_id=f"wait_for_{job}_window",
            target_time=wait_target_template(int(offset.total_seconds())),
            start_from_trigger=True,
            end_from_trigger=False,
            timeout=policy["wait"].execution_timeout.total_seconds(),
            executor_config=task_pod(policy["wait"].pod),
            **policy["wait"].operator_kwargs(),
        )
        for job, offset in (("batch_to_bronze", policy.bronze_offset), ("etl_to_gold", policy.gold_offset))
    }

    # Spark in local mode: deleting a few paths needs no cluster core. A teardown too (its rule is "all done"
    # with no setup task): it runs whatever its upstream's states, and the run's state stays etl_to_gold's.
    discard_partial_day = TripclickSparkSubmitOperator(
        task_id="discard_partial_day",
        conn_id=SPARK_CONN_ID,
        deploy_mode="client",
        # Application, arguments and the local master are set by bind_discard, or the task is skipped.
        application="",
        pre_execute=bind_discard,
        post_execute=record_stage_timing,
        executor_config=spark_driver_pod(policy["discard_partial_day"].pod),
        **policy["discard_partial_day"].operator_kwargs(),
    ).as_teardown()

    # A teardown runs once every stage is done, whatever their states, and its own state does not
    # decide the run's: a day with a failed stage still gets its summary and still ends failed.
    notify_completion = PythonOperator(
        task_id="notify_completion",
        python_callable=send_completion_summary,
        executor_config=task_pod(policy["notify"].pod),
        **policy["notify"].operator_kwargs(),
    ).as_teardown()

    preflight >> [*producers, spark["streaming_to_silver"], *waits.values()]
    [*producers, spark["streaming_to_silver"], waits["batch_to_bronze"]] >> spark["batch_to_bronze"]
    [spark["batch_to_bronze"], waits["etl_to_gold"]] >> spark["etl_to_gold"]
    [*producers, spark["streaming_to_silver"], spark["batch_to_bronze"]] >> discard_partial_day
    [preflight, *producers, *spark.values(), discard_partial_day] >> notify_completion
