"""chart/templates/monitoring.yaml: the rules and dashboard ConfigMaps and the statsd exporter's ingress,
rendered from the wrapper alone (no official chart needed) for every overlay."""

from __future__ import annotations

import json

import helm_python
import jmespath
import pytest
import yaml

from tests.chart import chartlib
from tests.monitoring.conftest import DASHBOARD, RULES


def _objs(wrapper_chart, combo: str = chartlib.PRODUCTION, patch: dict | None = None) -> list[dict]:
    """The objects templates/monitoring.yaml renders for an overlay combination."""
    manifests = chartlib.render_chart(wrapper_chart, combo, patch, full=False)
    return [o for o in chartlib.objects(manifests) if o["__source"].endswith("templates/monitoring.yaml")]


@pytest.mark.parametrize("combo", list(chartlib.OVERLAYS))
@pytest.mark.parametrize("kube", [chartlib.KUBE_VERSIONS[0], chartlib.KUBE_VERSIONS[-1]])
def test_objects_validate_strictly(wrapper_chart, combo, kube):
    objs = _objs(wrapper_chart, combo)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objs) == [
        ("ConfigMap", "tripclick-grafana-dashboard"),
        ("ConfigMap", "tripclick-prometheus-rules"),
        ("NetworkPolicy", "tripclick-np-statsd-ingress"),
    ]
    chartlib.validate_strictly(objs, kube)


def test_configmaps_carry_the_files_unchanged(wrapper_chart):
    objs = _objs(wrapper_chart)
    rules = chartlib.find(objs, "ConfigMap", "tripclick-prometheus-rules")
    assert rules["data"]["tripclick-alerts.rules.yaml"] == RULES.read_text().rstrip("\n")
    assert yaml.safe_load(rules["data"]["tripclick-alerts.rules.yaml"]) == yaml.safe_load(RULES.read_text())
    board = chartlib.find(objs, "ConfigMap", "tripclick-grafana-dashboard")
    assert json.loads(board["data"]["tripclick-daily-pipeline.json"]) == json.loads(DASHBOARD.read_text())
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1", "Grafana's sidecar looks for this label"
    assert "{{ $labels.task_id }}" in rules["data"]["tripclick-alerts.rules.yaml"], "Helm must not template the rules"


def test_labels_and_annotations_come_from_values(wrapper_chart):
    patch = {
        "tripclick": {
            "monitoring": {
                "rules": {"labels": {"role": "alert-rules"}},
                "dashboard": {"labels": {"team": "data"}, "annotations": {"grafana_folder": "Airflow"}},
            }
        }
    }
    objs = _objs(wrapper_chart, patch=patch)
    assert chartlib.find(objs, "ConfigMap", "tripclick-prometheus-rules")["metadata"]["labels"]["role"] == "alert-rules"
    board = chartlib.find(objs, "ConfigMap", "tripclick-grafana-dashboard")["metadata"]
    assert board["labels"]["team"] == "data" and board["labels"]["grafana_dashboard"] == "1"
    assert board["annotations"] == {"grafana_folder": "Airflow"}


def test_statsd_receives_from_airflow_pods_and_the_node_and_is_scraped(wrapper_chart):
    policy = chartlib.find(_objs(wrapper_chart), "NetworkPolicy", "tripclick-np-statsd-ingress")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"tier": "airflow", "release": "tripclick", "component": "statsd"}
    ingest, scrape = policy["ingress"]
    assert ingest["ports"] == [{"protocol": "UDP", "port": 9125}]
    assert {"podSelector": {"matchLabels": {"tier": "airflow", "release": "tripclick"}}} in ingest["from"]
    # Spark task pods on the host network send from the node's addresses.
    assert jmespath.search("from[].ipBlock.cidr", ingest) == ["10.20.0.10/32", "10.42.0.1/32"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 9102}]
    assert {"namespaceSelector": {}} in scrape["from"]


def test_scrape_sources_follow_the_values(wrapper_chart):
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    patch = {"tripclick": {"monitoring": {"scrapeFrom": [prometheus]}}}
    policy = chartlib.find(_objs(wrapper_chart, patch=patch), "NetworkPolicy", "tripclick-np-statsd-ingress")
    assert policy["spec"]["ingress"][1]["from"][0] == prometheus


def test_monitoring_can_be_switched_off(wrapper_chart):
    patch = {"tripclick": {"monitoring": {"enabled": False}}}
    objs = _objs(wrapper_chart, patch=patch)
    assert [o["kind"] for o in objs] == ["NetworkPolicy"], "the exporter still needs its ingress"
    patch = {"tripclick": {"monitoring": {"enabled": False}}, "airflow": {"statsd": {"enabled": False}}}
    assert _objs(wrapper_chart, patch=patch) == []


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"airflow": {"statsd": {"enabled": False}}}, "airflow.statsd.enabled is false"),
        ({"airflow": {"statsd": {"overrideMappings": []}}}, "airflow.statsd.overrideMappings is empty"),
        ({"tripclick": {"monitoring": {"enabeld": True}}}, "enabeld"),
        ({"tripclick": {"monitoring": {"dashboard": {"labels": {"grafana_dashboard": 1}}}}}, "grafana_dashboard"),
    ],
    ids=["statsd off", "default mappings", "misspelt key", "label not a string"],
)
def test_contradictory_values_are_refused(wrapper_chart, patch, message):
    with pytest.raises(helm_python.HelmError) as caught:
        chartlib.render_chart(wrapper_chart, patch=patch, full=False)
    assert message in str(caught.value)
