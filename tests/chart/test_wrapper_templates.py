"""Wrapper layer: the chart's own templates (NetworkPolicies, Variables, checks, NOTES) render for every
overlay, validate against Kubernetes 1.30-1.33 in strict mode, and refuse unsafe settings.

Runs without the official chart: the wrapper is rendered alone (its dependency is absent on purpose).
"""

from __future__ import annotations

import json

import helm_python
import jmespath
import pytest

from tests.chart import chartlib
from tripclick import config

COMBOS = list(chartlib.OVERLAYS)


def test_wrapper_render_really_lacks_the_official_chart(wrapper_chart, wrapper_renders):
    """Guards the layer's meaning: these renders contain the wrapper's templates only."""
    assert [(d["name"], d["status"]) for d in helm_python.dependency_list(str(wrapper_chart))] == [
        ("airflow", "missing")
    ]
    with pytest.raises(RuntimeError, match="airflow 1.21.0: missing"):
        chartlib.check_dependencies(wrapper_chart)
    for manifests in wrapper_renders.values():
        assert all(path.startswith("tripclick-orchestration/templates/") for path in manifests)


@pytest.mark.parametrize("combo", COMBOS)
@pytest.mark.parametrize("kube", chartlib.KUBE_VERSIONS)
def test_wrapper_objects_validate_strictly(wrapper_renders, combo, kube):
    objs = chartlib.objects(wrapper_renders[combo])
    assert {o["kind"] for o in objs} == {"ConfigMap", "NetworkPolicy", "Job"}
    chartlib.validate_strictly(objs, kube)


def test_task_pods_reach_exactly_their_remote_services(wrapper_renders):
    objs = chartlib.objects(wrapper_renders["base+k3s-ec2"])
    task = chartlib.find(objs, "NetworkPolicy", "tripclick-np-task-pods")["spec"]
    assert task["podSelector"]["matchLabels"] == {"tier": "airflow", "release": "tripclick", "component": "worker"}
    assert sorted(task["policyTypes"]) == ["Egress", "Ingress"]
    docker = [r for r in task["egress"] if r.get("ports") == [{"protocol": "TCP", "port": 2376}]]
    assert jmespath.search("[].to[].ipBlock.cidr", docker) == ["10.20.1.11/32", "10.20.1.12/32"]
    # The master: its RPC port, and its web UI, whose /json/ status preflight reads.
    master = [r for r in task["egress"] if {"protocol": "TCP", "port": 7077} in r.get("ports", [])]
    assert jmespath.search("[].to[].ipBlock.cidr", master) == ["10.20.2.10/32"]
    assert jmespath.search("[].ports[].port", master) == [7077, 8080]
    # Executors call back to the client-mode driver on its two fixed ports, from the workers only.
    assert jmespath.search("ingress[].ports[].port", task) == [41000, 41001]
    assert jmespath.search("ingress[].from[].ipBlock.cidr", task) == ["10.20.2.0/24"]
    every_port = jmespath.search("[].spec.[egress, ingress][][].ports[].port", objs)
    assert 2375 not in every_port, "Docker's plain-text port must never be opened"


def test_every_airflow_pod_is_default_denied_then_allowed_dns_db_and_api(wrapper_renders):
    objs = chartlib.objects(wrapper_renders["base+k3s-ec2"])
    deny = chartlib.find(objs, "NetworkPolicy", "tripclick-np-default-deny")["spec"]
    assert deny == {
        "podSelector": {"matchLabels": {"tier": "airflow", "release": "tripclick"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    common = chartlib.find(objs, "NetworkPolicy", "tripclick-np-common-egress")["spec"]
    ports = {(p["protocol"], p["port"]) for p in jmespath.search("egress[].ports[]", common)}
    expected = {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 8080), ("TCP", 443), ("TCP", 22), ("TCP", 80)}
    statsd = (
        chartlib.overlay_values(chartlib.OVERLAYS["base+k3s-ec2"])["airflow"].get("statsd", {}).get("enabled", True)
    )
    assert expected | ({("UDP", 9125)} if statsd else set()) == ports
    # The exporter only listens: the common allow list is for Airflow's own processes.
    assert common["podSelector"]["matchExpressions"] == [
        {"key": "component", "operator": "NotIn", "values": ["statsd"]}
    ]
    if statsd:
        ingress = chartlib.find(objs, "NetworkPolicy", "tripclick-np-statsd-ingress")["spec"]["ingress"]
        assert [[(p["protocol"], p["port"]) for p in rule["ports"]] for rule in ingress] == [
            [("UDP", 9125)],
            [("TCP", 9102)],
        ]
        assert jmespath.search("[1].from[].ipBlock.cidr", ingress) == ["10.20.0.10/32", "10.42.0.1/32"]
    https = next(r for r in common["egress"] if r["ports"] == [{"protocol": "TCP", "port": 443}])
    assert "10.0.0.0/8" in https["to"][0]["ipBlock"]["except"]
    api = chartlib.find(objs, "NetworkPolicy", "tripclick-np-kube-api-egress")["spec"]
    assert jmespath.search("podSelector.matchExpressions[0].values", api) == ["scheduler", "api-server"]
    assert jmespath.search("egress[].to[].ipBlock.cidr", api) == ["10.20.0.10/32"]


def test_host_network_spark_tasks_reach_the_api_server_and_show_logs(wrapper_renders):
    objs = chartlib.objects(wrapper_renders["base+k3s-ec2"])
    ingress = chartlib.find(objs, "NetworkPolicy", "tripclick-np-api-server-ingress")["spec"]["ingress"]
    assert jmespath.search("[].from[].ipBlock.cidr", ingress) == ["10.20.0.10/32", "10.42.0.1/32"]
    assert jmespath.search("[].ports[].port", ingress) == [8080]
    logs = chartlib.find(objs, "NetworkPolicy", "tripclick-np-api-server-to-host-network-tasks")["spec"]
    assert jmespath.search("egress[].to[].ipBlock.cidr", logs) == ["10.20.0.10/32", "10.42.0.1/32"]
    assert jmespath.search("egress[].ports[].port", logs) == [8793]


def test_bundled_database_is_reached_by_pod_selector_on_kind(wrapper_renders):
    objs = chartlib.objects(wrapper_renders["base+kind"])
    common = chartlib.find(objs, "NetworkPolicy", "tripclick-np-common-egress")["spec"]
    selectors = jmespath.search("egress[].to[].podSelector.matchLabels", common)
    assert {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "tripclick"} in selectors


def test_driver_ports_follow_the_variables(wrapper_chart):
    patch = {"tripclick": {"variables": {"tripclick_spark_driver_port": 42000}}}
    objs = chartlib.objects(chartlib.render_chart(wrapper_chart, "base+k3s-ec2", patch, full=False))
    task = chartlib.find(objs, "NetworkPolicy", "tripclick-np-task-pods")["spec"]
    assert jmespath.search("ingress[].ports[].port", task) == [42000, 41001]


def test_master_status_port_follows_the_variable(wrapper_chart):
    patch = {"tripclick": {"variables": {"tripclick_spark_master_ui_port": 18080}}}
    objs = chartlib.objects(chartlib.render_chart(wrapper_chart, "base+k3s-ec2", patch, full=False))
    task = chartlib.find(objs, "NetworkPolicy", "tripclick-np-task-pods")["spec"]
    master = [r for r in task["egress"] if {"protocol": "TCP", "port": 7077} in r.get("ports", [])]
    assert jmespath.search("[].ports[].port", master) == [7077, 18080]


def test_variables_become_env_of_every_pod(wrapper_renders):
    objs = chartlib.objects(wrapper_renders["base+k3s-ec2"])
    data = chartlib.variables(objs)
    assert data["AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_PORT"] == "41000"
    assert data["AIRFLOW_VAR_TRIPCLICK_DOCKER_TLS_DIR"] == "/opt/airflow/secrets/docker-tls"
    assert data["AIRFLOW_VAR_TRIPCLICK_TRANSPORT"] == "kafka"
    assert all(key.startswith("AIRFLOW_VAR_TRIPCLICK_") for key in data)
    base = chartlib.overlay_values(("base",))
    assert base["airflow"]["extraEnvFrom"].count("'{{ .Release.Name }}-variables'") == 1


def test_json_variables_are_stored_as_json(wrapper_chart):
    policy = {"producer": {"retries": 3}}
    patch = {"tripclick": {"variables": {"tripclick_task_policy": policy, "tripclick_preflight_skip": ["slack"]}}}
    data = chartlib.variables(chartlib.objects(chartlib.render_chart(wrapper_chart, "base", patch, full=False)))
    assert json.loads(data["AIRFLOW_VAR_TRIPCLICK_TASK_POLICY"]) == policy
    assert json.loads(data["AIRFLOW_VAR_TRIPCLICK_PREFLIGHT_SKIP"]) == ["slack"]


REFUSALS = [
    ({"airflow": {"executor": "CeleryExecutor"}}, 'airflow.executor is "CeleryExecutor"'),
    ({"airflow": {"fernetKey": "x" * 44}}, "airflow.fernetKey holds a secret value"),
    ({"airflow": {"jwtSecretName": None}}, "airflow.jwtSecretName is not set"),
    ({"airflow": {"data": {"metadataSecretName": None}}}, "no metadata database"),
    ({"airflow": {"dags": {"gitSync": {"knownHosts": None}}}}, "airflow.dags.gitSync.knownHosts is empty"),
    (
        {"airflow": {"dags": {"gitSync": {"repo": "https://github.com/apache/airflow.git"}}}},
        "official chart's example",
    ),
    ({"airflow": {"createUserJob": {"enabled": True}}}, "airflow.createUserJob.enabled is true"),
    ({"tripclick": {"variables": {"tripclick_docker_allow_plain_tcp": True}}}, "without TLS"),
    (
        {"airflow": {"workers": {"kubernetes": {"extraVolumes": []}}}},
        "not among airflow.workers.kubernetes.extraVolumes",
    ),
    ({"tripclick": {"variables": {"tripclick_docker_tls_dir": "/tls"}}}, 'tripclick_docker_tls_dir is "/tls" but'),
]


@pytest.mark.parametrize(("patch", "message"), REFUSALS, ids=[m for _, m in REFUSALS])
def test_unsafe_or_contradictory_settings_are_refused(wrapper_chart, patch, message):
    with pytest.raises(helm_python.HelmError) as caught:
        chartlib.render_chart(wrapper_chart, "base+k3s-ec2", patch, full=False)
    assert message in str(caught.value)


def test_bundled_database_without_a_password_secret_is_refused(wrapper_chart):
    with pytest.raises(helm_python.HelmError, match="postgresql.auth.existingSecret is not set"):
        chartlib.render_chart(
            wrapper_chart, "base+kind", {"airflow": {"postgresql": {"auth": {"existingSecret": None}}}}, full=False
        )


def test_notes_give_port_forward_login_and_no_warning_in_production(wrapper_renders):
    text = chartlib.notes(wrapper_renders["base+k3s-ec2"])
    assert "kubectl port-forward -n airflow svc/tripclick-api-server 8080:8080" in text
    assert "kubectl get secret -n airflow tripclick-admin -o jsonpath='{.data.username}'" in text
    assert "kubectl get secret -n airflow tripclick-admin -o jsonpath='{.data.password}'" in text
    assert "s3://tripclick-airflow-logs/logs" in text
    assert "WARNINGS" not in text


def test_notes_warn_about_lost_logs_and_missing_firewall_openings(wrapper_renders):
    text = chartlib.notes(wrapper_renders["base+kind"])
    assert "remote logging is off" in text
    assert "dockerHosts.cidrs is empty" in text


def test_plain_tcp_docker_allowed_explicitly_still_warns(wrapper_chart):
    patch = {
        "tripclick": {
            "variables": {"tripclick_docker_allow_plain_tcp": True},
            "allowUnsafe": {"plainTcpDocker": True},
        }
    }
    assert "WITHOUT TLS" in chartlib.notes(chartlib.render_chart(wrapper_chart, "base+k3s-ec2", patch, full=False))


@pytest.mark.parametrize("combo", COMBOS)
def test_rendered_variables_parse_as_the_dag_reads_them(wrapper_renders, combo):
    """Values -> ConfigMap string -> the DAG's own parser, for every Variable an overlay sets."""
    data = chartlib.variables(chartlib.objects(wrapper_renders[combo]))
    assert data, "the overlays set Variables"
    for key, raw in data.items():
        spec = config.VARIABLES_BY_NAME[key.removeprefix("AIRFLOW_VAR_").lower()]
        spec.parse(raw)  # raises ValueError naming the expected form


def test_every_variable_type_survives_rendering(wrapper_chart):
    given = {
        "tripclick_docker_allow_plain_tcp": False,
        "tripclick_spark_blockmanager_port": 41001,
        "tripclick_producer_mode": "batch",
        "tripclick_producer_extra_env": {"REPLAY_SPEED": "60"},
        "tripclick_preflight_skip": ["slack"],
        "tripclick_spark_conf": {"spark.sql.shuffle.partitions": 4},
    }
    rendered = chartlib.render_chart(wrapper_chart, "base", {"tripclick": {"variables": given}}, full=False)
    data = chartlib.variables(chartlib.objects(rendered))
    for name, value in given.items():
        assert config.VARIABLES_BY_NAME[name].parse(data[f"AIRFLOW_VAR_{name.upper()}"]) == value, name
