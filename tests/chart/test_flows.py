"""Every connection the production release needs, evaluated against the NetworkPolicies it renders.

tests/chart/flows.yaml is the table: needed flows must be allowed, forbidden ones denied, and a needed
flow on a port the table does not list must be denied too. Pods on the host network (the Spark tasks)
and hosts outside the cluster are not filtered by NetworkPolicy: for every flow that leaves or enters
the node, docs/install.md's "Security groups" table must have the row, and no row without a flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from tests.chart import chartlib, netpol
from tripclick import config

FLOWS = chartlib.REPO / "tests" / "chart" / "flows.yaml"
COMBO = "base+k3s-ec2"
NODE_SG = "Airflow node"
# A port no flow of the table uses: a needed flow on it must be refused (the rules are per port).
UNLISTED_PORT = 1


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    protocol: str
    first: int
    last: int
    why: str
    variable: str | None = None

    @property
    def ports(self) -> str:
        return f"{self.protocol} {self.first}" + (f"-{self.last}" if self.last != self.first else "")


@cache
def table() -> dict[str, Any]:
    return chartlib.load_yaml(FLOWS)


def production_values() -> dict[str, Any]:
    """The overlay as the release sees it: wrapper defaults, then the official chart's, then the files."""
    values = chartlib.deep_merge(
        chartlib.load_yaml(chartlib.CHART / "values.yaml"), chartlib.overlay_values(chartlib.OVERLAYS[COMBO])
    )
    official = chartlib.SHARED_CHART / "values.yaml"
    if official.is_file():
        values["airflow"] = chartlib.deep_merge(chartlib.load_yaml(official), values.get("airflow") or {})
    return values


def _lookup(values: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        values = (values or {}).get(part)
    return values


def _ports(entry: dict, values: dict) -> tuple[int, int, str | None]:
    port = entry["port"]
    if isinstance(port, dict):
        name = port["variable"]
        value = values["tripclick"]["variables"].get(name, config.VARIABLES_BY_NAME[name].default)
        return int(value), int(value), name
    if isinstance(port, str):
        first, last = port.split("-")
        return int(first), int(last), None
    return port, port, None


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def expand(section: str, values: dict) -> list[Flow]:
    flows = []
    for entry in table()[section]:
        if "when" in entry and not _lookup(values, entry["when"]):
            continue
        first, last, variable = _ports(entry, values)
        for source in _as_list(entry["from"]):
            for destination in _as_list(entry["to"]):
                assert source in table()["endpoints"] and destination in table()["endpoints"], entry
                flows.append(Flow(source, destination, entry.get("proto", "TCP"), first, last, entry["why"], variable))
    return flows


def endpoints(overrides: dict[str, dict] | None = None) -> dict[str, netpol.Endpoint]:
    """Endpoints of the table; pods get distinct pod-network addresses (k3s's 10.42.0.0/24)."""
    found = {}
    for index, (name, spec) in enumerate(table()["endpoints"].items()):
        spec = spec | (overrides or {}).get(name, {})
        namespace = spec.get("namespace", chartlib.NAMESPACE)
        on_pod_network = "pod" in spec and not spec.get("hostNetwork")
        found[name] = netpol.Endpoint(
            name,
            tuple(spec.get("ips") or [f"10.42.0.{10 + index}"]),
            spec["pod"] if on_pod_network else None,
            namespace if on_pod_network else None,
            {"kubernetes.io/metadata.name": namespace} if on_pod_network else {},
        )
    return found


def sample_ports(flow: Flow) -> list[int]:
    return sorted({flow.first, (flow.first + flow.last) // 2, flow.last})


def verdict(policies, points, flow: Flow, port: int) -> netpol.Verdict:
    return netpol.evaluate(
        policies, points[flow.source], points[flow.destination], flow.protocol, port, default_ns=chartlib.NAMESPACE
    )


def _policies(manifests: dict[str, str]) -> list[dict]:
    return [o for o in chartlib.objects(manifests) if o["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def values() -> dict:
    return production_values()


@pytest.fixture(scope="module", params=["wrapper", "full"])
def policies(request, wrapper_renders) -> list[dict]:
    """The production NetworkPolicies, from the wrapper alone (CI) and from the full release."""
    if request.param == "full":
        return _policies(request.getfixturevalue("full_renders")[COMBO])
    return _policies(wrapper_renders[COMBO])


def _by(decision: netpol.Decision, side: str) -> str:
    if decision.by == (netpol.NOT_A_POD,):
        return ""
    if not decision.allowed:
        return f"{side}: DENIED"
    if decision.by == (netpol.UNSELECTED,):
        return f"{side}: no policy"
    return f"{side}: " + ",".join(name.removeprefix(f"{chartlib.RELEASE}-np-") for name in decision.by)


def test_every_needed_flow_is_allowed(policies, values, capsys):
    points = endpoints()
    rows, denied = [], []
    sg_rows = install_security_groups()
    for flow in expand("flows", values):
        verdicts = [verdict(policies, points, flow, port) for port in sample_ports(flow)]
        if not all(v.allowed for v in verdicts):
            side = "egress" if not all(v.egress.allowed for v in verdicts) else "ingress"
            denied.append(f"{flow.source} -> {flow.destination} {flow.ports} ({flow.why}): denied on {side}")
        parts = [p for p in (_by(verdicts[0].egress, "egress"), _by(verdicts[0].ingress, "ingress")) if p]
        if crosses_the_node(flow):
            parts.append("SG row" if covering_rows(flow, sg_rows) else "NO SG ROW")
        rows.append((flow, "; ".join(parts)))
    with capsys.disabled():
        print(f"\nflows of {COMBO} ({len(rows)})")
        print(f"{'source':14} {'destination':15} {'port':16} allowed by")
        for flow, by in rows:
            print(f"{flow.source:14} {flow.destination:15} {flow.ports:16} {by}")
    assert denied == [], "\n".join(denied)


def test_every_forbidden_flow_is_denied(policies, values):
    points = endpoints()
    sg_rows = install_security_groups()
    allowed = []
    for flow in expand("forbidden", values):
        verdicts = [verdict(policies, points, flow, port) for port in sample_ports(flow)]
        # Host-network and outside endpoints are unfiltered: only the security groups can deny those.
        governed = any(v.governed for v in verdicts)
        if governed and any(v.allowed for v in verdicts):
            by = verdicts[0].egress.by + verdicts[0].ingress.by
            allowed.append(f"{flow.source} -> {flow.destination} {flow.ports} ({flow.why}): allowed by {by}")
        if not governed and crosses_the_node(flow) and covering_rows(flow, sg_rows, opened_only=True):
            allowed.append(f"{flow.source} -> {flow.destination} {flow.ports}: docs/install.md opens it")
        if not governed and not crosses_the_node(flow):
            allowed.append(f"{flow.source} -> {flow.destination}: nothing can deny it; not a meaningful entry")
    assert allowed == [], "\n".join(allowed)


def test_a_needed_flow_on_an_unlisted_port_is_denied(policies, values):
    points = endpoints()
    needed = expand("flows", values)
    listed = {(f.source, f.destination, f.protocol, p) for f in needed for p in range(f.first, f.last + 1)}
    assert not any(port == UNLISTED_PORT for *_, port in listed)
    opened = []
    for flow in needed:
        probe = Flow(flow.source, flow.destination, flow.protocol, UNLISTED_PORT, UNLISTED_PORT, flow.why)
        result = verdict(policies, points, probe, UNLISTED_PORT)
        if result.governed and result.allowed:
            opened.append(f"{flow.source} -> {flow.destination} {probe.ports}: {result.egress.by + result.ingress.by}")
    assert opened == [], "\n".join(opened)


def test_the_checks_can_fail(wrapper_renders, values):
    """The same table, evaluated on policies missing one rule, reports that flow (the evaluator is not vacuous)."""
    policies = [
        p for p in _policies(wrapper_renders[COMBO]) if not p["metadata"]["name"].endswith("api-server-ingress")
    ]
    points = endpoints()
    flow = next(f for f in expand("flows", values) if (f.source, f.destination) == ("task", "api-server"))
    assert not verdict(policies, points, flow, flow.first).allowed
    # And every Airflow pod is default-denied: a flow the table does not know is refused.
    unknown = Flow("api-server", "server0", "TCP", 2376, 2376, "")
    assert not verdict(_policies(wrapper_renders[COMBO]), points, unknown, 2376).allowed


# --- docs/install.md's security groups -------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityGroupRow:
    destination: str
    source: str
    ranges: tuple[tuple[str, int, int], ...]
    variables: tuple[str, ...]
    text: str


def install_security_groups() -> list[SecurityGroupRow]:
    install = (chartlib.REPO / "docs" / "install.md").read_text()
    match = re.search(r"^#+ \d+\. Security groups\n(.*?)(?=^#)", install, re.M | re.S)
    assert match, "docs/install.md has no 'Security groups' section"
    rows = []
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0] in ("Destination", "") or set(cells[0]) <= {"-"}:
            continue
        ranges = tuple(
            (proto, int(first), int(last or first))
            for proto, first, last in re.findall(r"(TCP|UDP) (\d+)(?:-(\d+))?", cells[1])
        )
        assert ranges, f"docs/install.md security group row without a port: {line}"
        rows.append(
            SecurityGroupRow(cells[0], cells[2], ranges, tuple(re.findall(r"`(tripclick_\w+)`", cells[1])), line)
        )
    assert rows, "docs/install.md's security group table is empty"
    return rows


def _sg(name: str) -> str:
    spec = table()["endpoints"][name]
    return spec.get("sg", NODE_SG) if spec["where"] != "node" else NODE_SG


def crosses_the_node(flow: Flow) -> bool:
    places = {table()["endpoints"][flow.source]["where"], table()["endpoints"][flow.destination]["where"]}
    return "node" in places and places & {"vpc", "internet"} != set()


def covering_rows(flow: Flow, rows: list[SecurityGroupRow], *, opened_only: bool = False) -> list[SecurityGroupRow]:
    found = []
    for row in rows:
        if opened_only and row.source == "none":
            continue
        if row.destination != _sg(flow.destination) or (row.source != _sg(flow.source) and row.source != "none"):
            continue
        if row.variables and flow.variable:
            if flow.variable in row.variables:
                found.append(row)
            continue
        if any(p == flow.protocol and a <= flow.first and flow.last <= b for p, a, b in row.ranges):
            found.append(row)
    return found


def test_install_security_groups_open_exactly_the_flows_that_leave_or_enter_the_node(values):
    rows = install_security_groups()
    needed = [f for f in expand("flows", values) if crosses_the_node(f)]
    missing = [
        f"{_sg(f.destination)} | {f.ports} | {_sg(f.source)} ({f.source} -> {f.destination}: {f.why})"
        for f in needed
        if not [r for r in covering_rows(f, rows) if r.source != "none"]
    ]
    assert missing == [], "docs/install.md 'Security groups' lacks rows:\n" + "\n".join(missing)
    used = {r.text for f in needed for r in covering_rows(f, rows)}
    stale = [r.text for r in rows if r.source != "none" and r.text not in used]
    assert stale == [], "docs/install.md rows no flow of tests/chart/flows.yaml needs:\n" + "\n".join(stale)
    forbidden = [f for f in expand("forbidden", values) if crosses_the_node(f)]
    closed = {r.text for f in forbidden for r in covering_rows(f, rows) if r.source == "none"}
    assert closed == {r.text for r in rows if r.source == "none"}, "every 'none' row names a forbidden flow"


def test_the_install_rows_for_variables_show_their_defaults():
    for row in install_security_groups():
        for name in row.variables:
            default = config.VARIABLES_BY_NAME[name].default
            assert any(a == default for _, a, _ in row.ranges), (row.text, default)


# --- the table's pods are the release's pods ----------------------------------------------------------


def test_pod_labels_are_the_rendered_ones(full_renders):
    objs = chartlib.objects(full_renders[COMBO])
    rendered = {
        o["spec"]["template"]["metadata"]["labels"]["component"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    }
    rendered["worker"] = chartlib.pod_template(objs)["metadata"]["labels"]
    for name, spec in table()["endpoints"].items():
        if "pod" in spec and spec.get("namespace", chartlib.NAMESPACE) == chartlib.NAMESPACE:
            component = spec["pod"]["component"]
            if component == "statsd" and component not in rendered:
                continue
            assert rendered[component] == spec["pod"], name
    known = {s["pod"].get("component") for s in table()["endpoints"].values() if "pod" in s}
    assert set(rendered) <= known | {"run-airflow-migrations"}, "a workload the flow table does not know"


def test_task_pods_as_the_executor_builds_them_get_the_same_verdicts(full_renders, pipeline_dag, tmp_path, values):
    """Each task's real pod (labels the executor adds, host network or not) in place of the table's."""
    from tests.chart.test_executor_view import build_pods

    policies = _policies(full_renders[COMBO])
    pods = build_pods(full_renders, pipeline_dag, tmp_path)
    expected = {"task": endpoints(), "spark-task": endpoints()}
    spark = {t for t, pod in pods.items() if pod["spec"].get("hostNetwork")}
    assert spark == {"streaming_to_silver", "batch_to_bronze", "etl_to_gold", "discard_partial_day"}
    for task_id, pod in pods.items():
        role = "spark-task" if task_id in spark else "task"
        override = {role: {"pod": pod["metadata"]["labels"]}}
        points = endpoints(override)
        for flow in expand("flows", values) + expand("forbidden", values):
            if role not in (flow.source, flow.destination):
                continue
            real = verdict(policies, points, flow, flow.first).allowed
            assert real == verdict(policies, expected[role], flow, flow.first).allowed, (task_id, flow)
