"""Build the Grafana dashboard chart/files/monitoring/tripclick-dashboard.json (grafana-foundation-sdk).

python scripts/monitoring_dashboard.py           # print the JSON
python scripts/monitoring_dashboard.py --write   # write it where the chart ships it
python scripts/monitoring_dashboard.py --check   # exit 1 if the committed file differs

Its Airflow panels read the series the statsd exporter makes with values/base.yaml's mappings; the
control-plane panels read the kubelet's cAdvisor series. tests/monitoring checks that every query
parses and uses only those series.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "chart" / "files" / "monitoring" / "tripclick-dashboard.json"

DAG = 'dag_id="tripclick_daily_pipeline"'
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The control plane's pods (official chart names: <release>-<component>-...), and the task pods the
# KubernetesExecutor names after the DAG.
CONTROL_PLANE = 'namespace="$namespace", pod=~"$release-(api-server|scheduler|dag-processor|triggerer|statsd).*"'
TASK_PODS = 'namespace="$namespace", pod=~"tripclick-daily-pipeline-.*"'
# A container's own series (cAdvisor also reports the pod's cgroup and its pause container).
CONTAINERS = 'container!="", container!="POD"'

DESCRIPTION = (
    "The TripClick daily pipeline (tripclick_daily_pipeline, 15:00 UTC) from the outside: Airflow's "
    "metrics as the statsd exporter exposes them (airflow_* series), and the control plane's CPU and "
    "memory from the kubelet's cAdvisor (container_* series, not from statsd). Alerts: "
    "chart/files/monitoring/tripclick-alerts.rules.yaml; docs/monitoring.md explains every panel."
)


def new_in(selector: str, window: str) -> str:
    """Events in the last `window` of a statsd counter, counting a series that appeared within it whole
    (its first event arrives as its first sample, which increase() cannot see)."""
    return f"(({selector} - {selector} offset {window}) or {selector})"


def query(expr: str, ref: str, legend: str = "", *, instant: bool = False, table_format: bool = False):
    built = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        built = built.legend_format(legend)
    built = built.instant() if instant else built.range()
    if table_format:
        built = built.format(prometheus_models.PromQueryFormat.TABLE)
    return built


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


def stages_table() -> table.Panel:
    finish = f'airflow_task_finish_total{{{DAG}, state="%s"}}'
    dur_sum = f"airflow_dag_task_duration_sum{{{DAG}}}"
    dur_count = f"airflow_dag_task_duration_count{{{DAG}}}"
    last = f"sum by (task_id) {new_in(dur_sum, '24h')} / sum by (task_id) {new_in(dur_count, '24h')}"
    median = f"histogram_quantile(0.5, sum by (task_id, le) (increase(airflow_dag_task_duration_bucket{{{DAG}}}[7d])))"
    columns = {
        "Value #A": "succeeded",
        "Value #B": "failed",
        "Value #C": "retried",
        "Value #D": "last try",
        "Value #E": "7-day median",
        "Value #F": "last / median",
    }
    panel = (
        table.Panel()
        .title("Stages in the last 24 hours")
        .description(
            "One row per task of tripclick_daily_pipeline: tries that ended in the last 24 h by outcome, "
            "how long the last tries took (their mean when a stage ran more than once) and the stage's "
            "median over 7 days, from the duration histogram's buckets."
        )
        .datasource(DATASOURCE)
        .grid_pos(models.GridPos(h=9, w=16, x=0, y=1))
        .with_target(
            query(f"sum by (task_id) {new_in(finish % 'success', '24h')}", "A", instant=True, table_format=True)
        )
        .with_target(
            query(f"sum by (task_id) {new_in(finish % 'failed', '24h')}", "B", instant=True, table_format=True)
        )
        .with_target(
            query(f"sum by (task_id) {new_in(finish % 'up_for_retry', '24h')}", "C", instant=True, table_format=True)
        )
        .with_target(query(last, "D", instant=True, table_format=True))
        .with_target(query(median, "E", instant=True, table_format=True))
        .with_target(query(f"({last}) / ({median})", "F", instant=True, table_format=True))
        .with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": columns, "indexByName": {}},
            )
        )
        .override_by_name("last try", [models.DynamicConfigValue(id_val="unit", value="s")])
        .override_by_name("7-day median", [models.DynamicConfigValue(id_val="unit", value="s")])
        .override_by_name(
            "last / median",
            [
                models.DynamicConfigValue(id_val="decimals", value=1),
                models.DynamicConfigValue(id_val="unit", value="x"),
                models.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
                models.DynamicConfigValue(
                    id_val="thresholds",
                    value={
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": 2},
                            {"color": "red", "value": 3},
                        ],
                    },
                ),
            ],
        )
        .override_by_name(
            "failed",
            [
                models.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
                *red_when_positive(),
            ],
        )
    )
    return panel


def red_when_positive() -> list[models.DynamicConfigValue]:
    return [
        models.DynamicConfigValue(
            id_val="thresholds",
            value={"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]},
        )
    ]


def run_stat(title: str, expr: str, y: int, *, unit: str, steps, description: str, refs=(), alarm=()) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .grid_pos(models.GridPos(h=3, w=8, x=16, y=y))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(query(expr, "A", refs[0] if refs else "", instant=True))
    )
    for ref, (extra, legend) in zip("BCD", refs[1:], strict=False):
        panel = panel.with_target(query(extra, ref, legend, instant=True))
    for name in alarm:
        panel = panel.override_by_name(name, red_when_positive())
    return panel


def series_panel(title: str, description: str, pos: models.GridPos, unit: str, *targets, stacked=False):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .grid_pos(pos)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs([])
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    for ref, (expr, legend) in zip("ABCDEFG", targets, strict=False):
        panel = panel.with_target(query(expr, ref, legend))
    return panel


def build() -> dict:
    success_sum = f"airflow_dagrun_duration_success_sum{{{DAG}}}"
    success_count = f"airflow_dagrun_duration_success_count{{{DAG}}}"
    failed_count = f"airflow_dagrun_duration_failed_count{{{DAG}}}"
    delay_sum = f"airflow_dagrun_schedule_delay_sum{{{DAG}}}"
    delay_count = f"airflow_dagrun_schedule_delay_count{{{DAG}}}"
    run_median = f"histogram_quantile(0.5, sum by (le) (increase(airflow_dagrun_duration_success_bucket{{{DAG}}}[7d])))"
    tries_failed = f'airflow_task_finish_total{{{DAG}, state=~"failed|up_for_retry"}}'
    reported = f"(sum {new_in(tries_failed, '1h')} or vector(0))"

    board = (
        dashboard.Dashboard("TripClick daily pipeline")
        .uid("tripclick-daily-pipeline")
        .description(DESCRIPTION)
        .tags(["tripclick", "airflow"])
        .editable()
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            dashboard.TextBoxVariable("namespace")
            .label("Namespace")
            .default_value("airflow")
            .description("Namespace of the Airflow release (control-plane panels)")
        )
        .with_variable(
            dashboard.TextBoxVariable("release")
            .label("Release")
            .default_value("tripclick")
            .description("Helm release name: the control plane's pods are <release>-<component>-...")
        )
        .with_row(dashboard.Row("Today's run").grid_pos(models.GridPos(h=1, w=24, x=0, y=0)))
        .with_panel(stages_table())
        .with_panel(
            run_stat(
                "Runs in the last 24 hours",
                f"sum {new_in(success_count, '24h')} or vector(0)",
                1,
                unit="none",
                steps=[(None, "red"), (1, "green")],
                description="Successful and failed runs of tripclick_daily_pipeline that ended in the last 24 h.",
                refs=("succeeded", (f"sum {new_in(failed_count, '24h')} or vector(0)", "failed")),
                alarm=("failed",),
            )
        )
        .with_panel(
            run_stat(
                "Last run against its 7-day median",
                f"sum {new_in(success_sum, '26h')} / sum {new_in(success_count, '26h')}",
                4,
                unit="s",
                steps=[(None, "blue")],
                description="Duration of the run that succeeded in the last 26 h, and the median of the successful "
                "runs of the 7 days (from the duration histogram's buckets).",
                refs=("last run", (run_median, "7-day median")),
            )
        )
        .with_panel(
            run_stat(
                "Schedule delay of the last run",
                f"sum {new_in(delay_sum, '24h')} / sum {new_in(delay_count, '24h')}",
                7,
                unit="s",
                steps=[(None, "green"), (60, "orange"), (300, "red")],
                description="How long after 15:00 UTC the scheduler started the run (airflow_dagrun_schedule_delay).",
            )
        )
        .with_panel(
            series_panel(
                "Stages at work",
                "Task instances of tripclick_daily_pipeline by state, as the scheduler reports them every 30 s: "
                "running (a pod at work), deferred (a wait_for_* window in the triggerer), queued (waiting for a pod).",
                models.GridPos(h=8, w=24, x=0, y=10),
                "none",
                (f"sum by (task_id) (airflow_ti_running{{{DAG}}}) > 0", "{{task_id}} running"),
                (f"sum by (task_id) (airflow_ti_deferred{{{DAG}}}) > 0", "{{task_id}} deferred"),
                (f"sum by (task_id) (airflow_ti_queued{{{DAG}}}) > 0", "{{task_id}} queued"),
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Airflow health").grid_pos(models.GridPos(h=1, w=24, x=0, y=18)))
        .with_panel(
            series_panel(
                "Heartbeats",
                "Beats per minute of the scheduler, the dag-processor and the triggerer. A line at zero (or gone) "
                "means the component is down or stuck: AirflowSchedulerHeartbeatMissing fires after 10 minutes.",
                models.GridPos(h=8, w=8, x=0, y=19),
                "none",
                ("sum(rate(airflow_scheduler_heartbeat[5m])) * 60", "scheduler"),
                ("sum(rate(airflow_dag_processor_heartbeat[5m])) * 60", "dag-processor"),
                ("sum(rate(airflow_triggerer_heartbeat[5m])) * 60", "triggerer"),
            )
        )
        .with_panel(
            run_stat(
                "DAG import errors",
                "max(airflow_dag_processing_import_errors)",
                19,
                unit="none",
                steps=[(None, "green"), (1, "red")],
                description="DAG files the dag-processor cannot import (AirflowDagImportErrors); "
                "the UI shows the traceback.",
            ).grid_pos(models.GridPos(h=8, w=4, x=8, y=19))
        )
        .with_panel(
            series_panel(
                "Failed task tries (per hour)",
                "Tries that ended failed or up for retry in the last hour, per task; 'without report' counts "
                "failures the scheduler recorded that no task process reported (a pod killed from outside).",
                models.GridPos(h=8, w=12, x=12, y=19),
                "none",
                (f"sum by (task_id, state) {new_in(tries_failed, '1h')}", "{{task_id}} {{state}}"),
                (f"(sum {new_in('airflow_ti_failures', '1h')} - {reported}) > 0", "without report"),
            )
        )
        .with_row(dashboard.Row("Control plane resources (kubelet)").grid_pos(models.GridPos(h=1, w=24, x=0, y=27)))
        .with_panel(
            series_panel(
                "CPU by pod",
                "Cores used by each control-plane pod, from the kubelet's cAdvisor "
                "(container_cpu_usage_seconds_total), not from statsd.",
                models.GridPos(h=8, w=12, x=0, y=28),
                "none",
                (
                    f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{CONTROL_PLANE}, {CONTAINERS}}}[5m]))",
                    "{{pod}}",
                ),
                (f"sum(rate(container_cpu_usage_seconds_total{{{TASK_PODS}, {CONTAINERS}}}[5m]))", "task pods (sum)"),
            )
        )
        .with_panel(
            series_panel(
                "Memory (working set) by pod",
                "Memory of each control-plane pod and of the task pods together, from the kubelet's cAdvisor "
                "(container_memory_working_set_bytes, what the OOM killer compares with the limit), not from statsd. "
                "The release's limits must fit 7 GiB at the 15:00 peak.",
                models.GridPos(h=8, w=12, x=12, y=28),
                "bytes",
                (f"sum by (pod) (container_memory_working_set_bytes{{{CONTROL_PLANE}, {CONTAINERS}}})", "{{pod}}"),
                (f"sum(container_memory_working_set_bytes{{{TASK_PODS}, {CONTAINERS}}})", "task pods (sum)"),
            )
        )
    )
    built = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # Stable panel ids, so links to a panel survive a regeneration.
    for number, panel in enumerate(built["panels"], start=1):
        panel["id"] = number
    return built


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {OUTPUT.relative_to(REPO)}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT.relative_to(REPO)}")
    elif args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT.relative_to(REPO)} is stale: run python scripts/monitoring_dashboard.py --write",
                file=sys.stderr,
            )
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
