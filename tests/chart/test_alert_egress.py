"""Email alerts on the chart side: the optional tripclick-smtp Secret reaches the pods that send alerts, and
the mail server is opened to them, and to no other pod, only once an overlay names its addresses."""

from __future__ import annotations

import jmespath
import pytest

from tests.chart import chartlib
from tests.chart.test_flows import COMBO, _policies, endpoints, expand, production_values, sample_ports, verdict

SMTP = {"tripclick": {"networkPolicies": {"smtp": {"cidrs": ["10.20.5.25/32"], "port": 587}}}}


@pytest.fixture(scope="module")
def smtp_values() -> dict:
    return chartlib.deep_merge(production_values(), SMTP)


@pytest.fixture(scope="module")
def smtp_policies(wrapper_chart) -> list[dict]:
    return _policies(chartlib.render_chart(wrapper_chart, COMBO, SMTP, full=False))


def _smtp_flows(section: str, values: dict):
    flows = [f for f in expand(section, values) if f.destination == "smtp"]
    assert flows, f"tests/chart/flows.yaml has no {section} entry for the mail server"
    return flows


def test_without_smtp_addresses_no_pod_reaches_a_mail_server(wrapper_renders):
    policies = _policies(wrapper_renders[COMBO])
    assert not [p for p in policies if p["metadata"]["name"].endswith("smtp-egress")]
    points = endpoints()
    for flow in _smtp_flows("flows", chartlib.deep_merge(production_values(), SMTP)):
        assert not verdict(policies, points, flow, flow.first).allowed, flow


def test_with_smtp_addresses_the_senders_reach_it_and_nothing_else_does(smtp_policies, smtp_values):
    points = endpoints()
    for flow in _smtp_flows("flows", smtp_values):
        assert all(verdict(smtp_policies, points, flow, port).allowed for port in sample_ports(flow)), flow
        assert not verdict(smtp_policies, points, flow, 25).allowed, f"{flow}: only the configured port"
    for flow in _smtp_flows("forbidden", smtp_values):
        assert not verdict(smtp_policies, points, flow, flow.first).allowed, flow


def test_the_smtp_secret_is_optional_in_every_airflow_pod_and_the_task_pods(full_renders):
    objs = chartlib.objects(full_renders[COMBO])
    ref = {"secretRef": {"name": "tripclick-smtp", "optional": True}}
    template = chartlib.pod_template(objs)
    base = jmespath.search("containers[?name=='base'] | [0]", template["spec"])
    assert ref in base["envFrom"]
    triggerer = chartlib.find(objs, "StatefulSet", f"{chartlib.RELEASE}-triggerer")
    container = jmespath.search("containers[?name=='triggerer'] | [0]", chartlib.pod_spec(triggerer))
    assert ref in container["envFrom"]


def test_the_triggerer_imports_the_deadline_callback_from_the_synced_dag_folder(full_renders):
    """The callback runs in the triggerer by its dotted path: the DAG folder must be on its PYTHONPATH."""
    objs = chartlib.objects(full_renders[COMBO])
    dags_folder = chartlib.airflow_cfg(objs).get("core", "dags_folder")
    triggerer = chartlib.find(objs, "StatefulSet", f"{chartlib.RELEASE}-triggerer")
    container = jmespath.search("containers[?name=='triggerer'] | [0]", chartlib.pod_spec(triggerer))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PYTHONPATH"] == dags_folder
    assert (chartlib.REPO / "dags" / "tripclick" / "deadline.py").is_file()
