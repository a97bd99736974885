"""Resource budget of the production overlay (base + k3s-ec2) on one EC2 m5.large.

The node has 2 vCPU and 8 GiB shared with k3s and the OS; the release gets 1.8 vCPU and 7 GiB of
requests, and its memory limits must fit the same 7 GiB (memory cannot be throttled, only
OOM-killed). A pod's request is max(sum of its containers, largest init container).

The 15:00 peak is read from the DAG, not listed by hand: the tasks that become runnable together the
moment the first task (preflight) succeeds, i.e. its direct downstream tasks with no other upstream.
Each gets a task pod, sized by its own executor_config (the task policy) plus the pod template's
git-sync init container, except a deferrable sensor that starts in the triggerer
(`start_from_trigger`): it has no pod until its trigger fires.

Two sources for the control plane, so CI (without the official chart's source) still checks it:
- the full render (every container as the chart really renders it), when the source is present;
- a model of the official chart from the overlays, which the first is checked against.
"""

from __future__ import annotations

import re

import pytest

from tests.chart import chartlib
from tests.chart.conftest import parse_pipeline_dag
from tripclick.policy import POLICY_VARIABLE

BUDGET_CPU_M = 1800
BUDGET_MEM_MI = 7 * 1024
TASK_CONTAINER = "base"
# A producer pod whose limit alone takes the memory the node has left.
BIG_POD = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "4Gi"}}


def cpu_m(quantity) -> int:
    text = str(quantity)
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def mem_mi(quantity) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|M|G)?", str(quantity))
    assert match, f"unsupported memory quantity {quantity!r}"
    number, unit = float(match.group(1)), match.group(2)
    factor = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20, None: 1 / 2**20}[unit]
    return round(number * factor)


def amounts(resources: dict | None, kind: str) -> tuple[int, int]:
    req = (resources or {}).get(kind) or {}
    return cpu_m(req.get("cpu", 0)), mem_mi(req.get("memory", 0))


def pod_request(containers: list[dict | None], init: list[dict | None]) -> tuple[int, int, int]:
    """(cpu m, memory Mi) requested by a pod, and its memory limit (Mi), from its containers' `resources`."""
    out = []
    for kind in ("requests", "limits"):
        main = [amounts(r, kind) for r in containers]
        first = [amounts(r, kind) for r in init] or [(0, 0)]
        out.append(
            (
                max(sum(c for c, _ in main), max(c for c, _ in first)),
                max(sum(m for _, m in main), max(m for _, m in first)),
            )
        )
    return out[0][0], out[0][1], out[1][1]


def rendered_control_plane(objs: list[dict]) -> dict[str, tuple[int, int, int, int]]:
    """name -> (replicas, cpu m, memory Mi, memory limit Mi) of each long-running workload in the render."""
    rows = {}
    for obj in objs:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = obj["spec"]["template"]["spec"]
        amount = pod_request(
            [c.get("resources") for c in spec["containers"]],
            [c.get("resources") for c in spec.get("initContainers", [])],
        )
        rows[obj["metadata"]["name"].removeprefix(f"{chartlib.RELEASE}-")] = (obj["spec"].get("replicas", 1), *amount)
    return rows


def modelled_control_plane(values: dict) -> dict[str, tuple[int, int, int, int]]:
    """The same table from the overlays alone (which containers the official chart adds per component)."""
    af = chartlib.deep_merge(chartlib.load_yaml(chartlib.SHARED_CHART / "values.yaml"), values["airflow"])
    git = af["dags"]["gitSync"]["resources"] if af["dags"]["gitSync"]["enabled"] else None

    def component(key: str, *, git_sync: bool, groomer: bool, extra_init=()) -> tuple[int, int, int, int]:
        section = af[key]
        main = [section["resources"]]
        init = [section["resources"], *extra_init]  # wait-for-airflow-migrations uses the component's resources
        if git_sync and git is not None:
            main.append(git)
            init.append(git)
        if groomer and section["logGroomerSidecar"]["enabled"]:
            main.append(section["logGroomerSidecar"]["resources"])
        return (section.get("replicas") or 1, *pod_request(main, init))

    rows = {
        "api-server": component(
            "apiServer",
            git_sync=False,
            groomer=False,
            extra_init=[c.get("resources") for c in af["apiServer"]["extraInitContainers"]],
        ),
        "scheduler": component("scheduler", git_sync=False, groomer=True),
        "dag-processor": component("dagProcessor", git_sync=True, groomer=True),
        "triggerer": component("triggerer", git_sync=True, groomer=True),
    }
    if af["postgresql"]["enabled"]:
        rows["postgresql"] = (1, *pod_request([af["postgresql"]["primary"]["resources"]], []))
    if af["statsd"]["enabled"]:
        rows["statsd"] = (1, *pod_request([af["statsd"]["resources"]], []))
    return rows


def peak_tasks(dag) -> list:
    """The tasks runnable together right after the DAG's first task: its downstream with no other upstream."""
    (first,) = [t for t in dag.tasks if not t.upstream_task_ids]
    return sorted((t for t in first.downstream_list if t.upstream_task_ids == {first.task_id}), key=lambda t: t.task_id)


def starts_in_triggerer(task) -> bool:
    """A deferrable operator with start_from_trigger hands its trigger to the triggerer without a worker."""
    return bool(getattr(task, "start_from_trigger", False)) and getattr(task, "start_trigger_args", None) is not None


def task_resources(task) -> dict:
    """The task container's resources as the executor merges them from the task's pod override."""
    override = (task.executor_config or {}).get("pod_override")
    containers = override.spec.containers if override is not None and override.spec else []
    base = next((c for c in containers if c.name == TASK_CONTAINER), None)
    assert base is not None and base.resources is not None, f"{task.task_id} has no sized pod override"
    return {"requests": base.resources.requests or {}, "limits": base.resources.limits or {}}


def peak_task_pods(dag, git_resources: dict) -> dict[str, tuple[int, int, int, int]]:
    """The task pods alive at 15:00 (the pod template adds the git-sync init container to each)."""
    rows = {}
    for task in peak_tasks(dag):
        if starts_in_triggerer(task):
            rows[f"task: {task.task_id} (triggerer)"] = (0, 0, 0, 0)
        else:
            rows[f"task: {task.task_id}"] = (1, *pod_request([task_resources(task)], [git_resources]))
    return rows


def _table(rows: dict[str, tuple[int, int, int, int]]) -> tuple[str, int, int]:
    lines = [f"{'component':50} {'n':>2} {'cpu req (m)':>12} {'mem req (Mi)':>13} {'mem limit (Mi)':>15}"]
    total_cpu = total_mem = total_limit = 0
    for name, (replicas, cpu, mem, limit) in rows.items():
        lines.append(f"{name:50} {replicas:>2} {cpu * replicas:>12} {mem * replicas:>13} {limit * replicas:>15}")
        total_cpu += cpu * replicas
        total_mem += mem * replicas
        total_limit += limit * replicas
    lines.append(f"{'total':50} {'':>2} {total_cpu:>12} {total_mem:>13} {total_limit:>15}")
    lines.append(
        f"{'budget (m5.large minus k3s/OS)':50} {'':>2} {BUDGET_CPU_M:>12} {BUDGET_MEM_MI:>13} {BUDGET_MEM_MI:>15}"
    )
    return "\n".join(lines), total_cpu, total_mem


@pytest.fixture(scope="module")
def production_values() -> dict:
    if not (chartlib.SHARED_CHART / "values.yaml").is_file():
        pytest.skip(f"{chartlib.SHARED_CHART}/values.yaml not found (official chart defaults)")
    return chartlib.overlay_values(chartlib.OVERLAYS["base+k3s-ec2"])


def _check(rows, capsys=None, title=""):
    table, cpu, mem = _table(rows)
    if capsys is not None:
        with capsys.disabled():
            print(f"\n{title}\n{table}")
    assert cpu <= BUDGET_CPU_M, f"CPU requests {cpu}m exceed {BUDGET_CPU_M}m\n{table}"
    assert mem <= BUDGET_MEM_MI, f"memory requests {mem}Mi exceed {BUDGET_MEM_MI}Mi\n{table}"
    # Memory is not compressible: if every pod used its limit at once, the node must still not
    # overcommit, or the kernel OOM-kills something in the middle of the day's run.
    limit = sum(row[0] * row[3] for row in rows.values())
    assert limit <= BUDGET_MEM_MI, f"memory limits {limit}Mi exceed {BUDGET_MEM_MI}Mi at the peak\n{table}"


def test_peak_fits_the_node_from_the_overlays(production_values, pipeline_dag, capsys):
    git = production_values["airflow"]["dags"]["gitSync"]["resources"]
    rows = modelled_control_plane(production_values) | peak_task_pods(pipeline_dag, git)
    _check(rows, capsys, "budget at 15:00, base+k3s-ec2 (model from the overlays, peak from the DAG)")


def test_peak_fits_the_node_as_rendered(full_renders, production_values, pipeline_dag, capsys):
    objs = chartlib.objects(full_renders["base+k3s-ec2"])
    rendered = rendered_control_plane(objs)
    assert rendered == modelled_control_plane(production_values), "the overlay model drifted from the chart"
    template = chartlib.pod_template(objs)["spec"]
    (git,) = [c["resources"] for c in template["initContainers"] if c["name"] == "git-sync-init"]
    rows = rendered | peak_task_pods(pipeline_dag, git)
    _check(rows, capsys, "budget at 15:00, base+k3s-ec2 (full render, peak from the DAG)")


def test_the_peak_is_what_runs_right_after_preflight(pipeline_dag):
    peak = {t.task_id for t in peak_tasks(pipeline_dag)}
    assert {"producer_server0", "producer_server1", "streaming_to_silver"} <= peak
    # Downstream of preflight, but waiting for other tasks too: not at 15:00.
    assert "notify_completion" in pipeline_dag.get_task("preflight").downstream_task_ids
    assert not peak & {"notify_completion", "batch_to_bronze", "etl_to_gold", "discard_partial_day"}
    # discard_partial_day only runs once the 15:00 stages are done.
    discard = pipeline_dag.get_task("discard_partial_day")
    assert {"producer_server0", "producer_server1", "streaming_to_silver"} <= discard.upstream_task_ids


def test_only_sensors_that_start_in_the_triggerer_go_without_a_pod():
    """On a DAG of its own: the same sensor counted with a pod, then without once it starts in the triggerer."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
    from airflow.sdk import DAG

    from tripclick.pod_overrides import task_pod

    pod = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "768Mi"}}
    with DAG("budget_probe", schedule=None) as dag:
        first = EmptyOperator(task_id="first", executor_config=task_pod(pod))
        worker_wait = DateTimeSensorAsync(
            task_id="defers_from_a_worker", target_time="{{ data_interval_end }}", executor_config=task_pod(pod)
        )
        trigger_wait = DateTimeSensorAsync(
            task_id="starts_in_the_triggerer",
            target_time="{{ data_interval_end }}",
            start_from_trigger=True,
            end_from_trigger=False,
            executor_config=task_pod(pod),
        )
        later = EmptyOperator(task_id="later", executor_config=task_pod(pod))
        first >> [worker_wait, trigger_wait, later]
        worker_wait >> later
    git = {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}
    assert peak_task_pods(dag, git) == {
        "task: defers_from_a_worker": (1, 100, 512, 768),
        "task: starts_in_the_triggerer (triggerer)": (0, 0, 0, 0),
    }


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"airflow": {"scheduler": {"resources": {"requests": {"memory": "5Gi"}}}}}, "memory requests"),
        ({"airflow": {"apiServer": {"resources": {"requests": {"cpu": "1500m"}}}}}, "CPU requests"),
        ({"tripclick": {"variables": {POLICY_VARIABLE: {"producer": {"pod": BIG_POD}}}}}, "memory limits"),
    ],
    ids=["scheduler memory request", "api-server cpu request", "producer pod limit"],
)
def test_the_budget_check_catches_an_oversized_overlay(production_values, wrapper_chart, patch, message):
    bigger = chartlib.deep_merge(production_values, patch)
    git = bigger["airflow"]["dags"]["gitSync"]["resources"]
    # The task policy is read when the DAG is parsed: parse it with the bigger overlay's Variables.
    dag = parse_pipeline_dag(chartlib.render(wrapper_chart, bigger, full=False))
    with pytest.raises(AssertionError, match=message):
        _check(modelled_control_plane(bigger) | peak_task_pods(dag, git))
