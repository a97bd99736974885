"""Resource budget of the production overlay (base + k3s-ec2) on one EC2 m5.large.

The node has 2 vCPU and 8 GiB shared with k3s and the OS; the release gets 1.8 vCPU and 7 GiB of
requests, and its memory limits must fit the same 7 GiB (memory cannot be throttled, only
OOM-killed). At the 15:00 peak the control plane runs next to two producer task pods and the
streaming driver's task pod. A pod's request is max(sum of its containers, largest init container).

Two sources for the control plane, so CI (without the official chart's source) still checks it:
- the full render (every container as the chart really renders it), when the source is present;
- a model of the official chart from the overlays, which the first is checked against.
Task pods: the DAG's task policy (dags/tripclick/policy.py) sizes the task container; the pod
template adds the git-sync init container.
"""

from __future__ import annotations

import re

import pytest

from tests.chart import chartlib
from tripclick.policy import POLICY_VARIABLE, merge_policy

BUDGET_CPU_M = 1800
BUDGET_MEM_MI = 7 * 1024
PEAK_TASKS = (("producer_server0", "producer"), ("producer_server1", "producer"))
PEAK_TASKS += (("streaming_to_silver", "streaming_to_silver"),)
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
    return rows


def peak_task_pods(values: dict, git_resources: dict) -> dict[str, tuple[int, int, int, int]]:
    """The task pods running at 15:00, each sized by its stage of the task policy the overlays give the DAG
    (its pod override replaces the pod template's resources), plus the git-sync init container."""
    policy = merge_policy(values["tripclick"]["variables"].get(POLICY_VARIABLE) or {})
    rows = {}
    for task_id, stage in PEAK_TASKS:
        rows[f"task: {task_id}"] = (1, *pod_request([policy[stage].pod], [git_resources]))
    return rows


def _table(rows: dict[str, tuple[int, int, int, int]]) -> tuple[str, int, int]:
    lines = [f"{'pod':32} {'n':>2} {'cpu req (m)':>12} {'mem req (Mi)':>13} {'mem limit (Mi)':>15}"]
    total_cpu = total_mem = total_limit = 0
    for name, (replicas, cpu, mem, limit) in rows.items():
        lines.append(f"{name:32} {replicas:>2} {cpu * replicas:>12} {mem * replicas:>13} {limit * replicas:>15}")
        total_cpu += cpu * replicas
        total_mem += mem * replicas
        total_limit += limit * replicas
    lines.append(f"{'total':32} {'':>2} {total_cpu:>12} {total_mem:>13} {total_limit:>15}")
    lines.append(f"{'budget (m5.large minus k3s/OS)':32} {'':>2} {BUDGET_CPU_M:>12} {BUDGET_MEM_MI:>13}")
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


def test_peak_fits_the_node_from_the_overlays(production_values, capsys):
    git = production_values["airflow"]["dags"]["gitSync"]["resources"]
    rows = modelled_control_plane(production_values) | peak_task_pods(production_values, git)
    _check(rows, capsys, "budget at 15:00, base+k3s-ec2 (model from the overlays)")


def test_peak_fits_the_node_as_rendered(full_renders, production_values, capsys):
    objs = chartlib.objects(full_renders["base+k3s-ec2"])
    rendered = rendered_control_plane(objs)
    assert rendered == modelled_control_plane(production_values), "the overlay model drifted from the chart"
    template = chartlib.pod_template(objs)["spec"]
    (git,) = [c["resources"] for c in template["initContainers"] if c["name"] == "git-sync-init"]
    rows = rendered | peak_task_pods(production_values, git)
    _check(rows, capsys, "budget at 15:00, base+k3s-ec2 (full render)")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"airflow": {"scheduler": {"resources": {"requests": {"memory": "5Gi"}}}}}, "memory requests"),
        ({"airflow": {"apiServer": {"resources": {"requests": {"cpu": "1500m"}}}}}, "CPU requests"),
        ({"tripclick": {"variables": {POLICY_VARIABLE: {"producer": {"pod": BIG_POD}}}}}, "memory limits"),
    ],
    ids=["scheduler memory request", "api-server cpu request", "producer pod limit"],
)
def test_the_budget_check_catches_an_oversized_overlay(production_values, patch, message):
    bigger = chartlib.deep_merge(production_values, patch)
    git = bigger["airflow"]["dags"]["gitSync"]["resources"]
    with pytest.raises(AssertionError, match=message):
        _check(modelled_control_plane(bigger) | peak_task_pods(bigger, git))
