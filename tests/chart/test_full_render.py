"""Full-release layer: wrapper + official chart 1.21.0 rendered per overlay, as `helm install` would.

Needs the official chart's source: AIRFLOW_CHART_SOURCE=/path/to/chart (the folder with Chart.yaml)
or `helm dependency build chart`. Without it every test here skips with that reason, except the check
that no two objects share a kind and a name, which also runs on the wrapper rendered alone.
"""

from __future__ import annotations

import json
import re

import helm_python
import jmespath
import pytest

from tests.chart import chartlib

COMBOS = list(chartlib.OVERLAYS)
CONNECTIONS = ("DOCKER_SERVER0", "DOCKER_SERVER1", "SPARK_CLUSTER", "SLACK_WEBHOOK")
TLS_MOUNT = "/opt/airflow/secrets/docker-tls"


def _objs(full_renders, combo):
    return chartlib.objects(full_renders[combo])


def _containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


# The supported range's two ends (the wrapper's own objects and the task pods are checked on every
# version in between); each full validation takes seconds.
@pytest.mark.parametrize("combo", COMBOS)
@pytest.mark.parametrize("kube", [chartlib.KUBE_VERSIONS[0], chartlib.KUBE_VERSIONS[-1]])
def test_release_validates_strictly(full_renders, combo, kube):
    objs = _objs(full_renders, combo)
    chartlib.validate_strictly(objs + [{"__source": "pod_template_file.yaml"} | chartlib.pod_template(objs)], kube)


@pytest.mark.parametrize("combo", COMBOS)
@pytest.mark.parametrize("renders", ["wrapper_renders", "full_renders"])
def test_no_two_objects_share_a_kind_and_a_name(request, renders, combo):
    """helm install refuses a release that renders one object twice: two templates of the wrapper, or the
    wrapper and the official chart, giving one name. The wrapper alone is checked without the official source."""
    objs = chartlib.objects(request.getfixturevalue(renders)[combo])
    assert len(chartlib.by_kind_and_name(objs)) == len(objs)


@pytest.mark.parametrize("combo", ["base+k3s-ec2"])
def test_helm_lint_is_clean(full_chart, combo):
    report = helm_python.lint(
        str(full_chart),
        chartlib.overlay_values(chartlib.OVERLAYS[combo]),
        strict=True,
        namespace=chartlib.NAMESPACE,
        kube_version="v1.30.0",
    )
    assert report["errors"] == []
    assert report["messages"] == []


@pytest.mark.parametrize("combo", COMBOS)
def test_kubernetes_executor_and_nothing_celery(full_renders, combo):
    objs = _objs(full_renders, combo)
    assert chartlib.airflow_cfg(objs)["core"]["executor"] == "KubernetesExecutor"
    workloads = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in ("Deployment", "StatefulSet", "Job")}
    expected = {
        ("Deployment", "tripclick-api-server"),
        ("Deployment", "tripclick-scheduler"),
        ("Deployment", "tripclick-dag-processor"),
        ("StatefulSet", "tripclick-triggerer"),
        ("Job", "tripclick-run-airflow-migrations"),
        # The wrapper's hook: the first UI admin from its Secret.
        ("Job", "tripclick-admin-user"),
    }
    if combo == "base+kind":
        expected.add(("StatefulSet", "tripclick-postgresql"))
    # The metrics exporter is the one workload beside Airflow's own (the official chart enables it by default).
    statsd = chartlib.overlay_values(chartlib.OVERLAYS[combo])["airflow"].get("statsd", {}).get("enabled", True)
    if statsd:
        expected.add(("Deployment", "tripclick-statsd"))
    assert workloads == expected
    assert not [o for o in objs if re.search("redis|flower|pgbouncer", o["metadata"]["name"])]
    assert bool([o for o in objs if "statsd" in o["metadata"]["name"]]) == statsd


@pytest.mark.parametrize("combo", COMBOS)
def test_tasks_find_the_dags_and_the_execution_api(full_renders, combo):
    core = chartlib.airflow_cfg(_objs(full_renders, combo))["core"]
    # git-sync checks the repository out under repo/; subPath dags holds the DAG and its package.
    assert core["dags_folder"] == "/opt/airflow/dags/repo/dags"
    assert core["execution_api_server_url"] == "http://tripclick-api-server:8080/execution/"


@pytest.mark.parametrize("combo", COMBOS)
def test_pod_template_carries_what_every_task_needs(full_renders, combo):
    template = chartlib.pod_template(_objs(full_renders, combo))
    spec = template["spec"]
    assert template["metadata"]["labels"] == {"tier": "airflow", "component": "worker", "release": "tripclick"}
    init = jmespath.search("initContainers[?name=='git-sync-init'] | [0]", spec)
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env["GITSYNC_REPO"] == "git@github.com:tripclick/tripclick-orchestration.git"
    assert env["GITSYNC_REF"] == "main" and env["GITSYNC_ONE_TIME"] == "true"
    assert "apache/airflow" not in str(env) and "v2-2-stable" not in str(env)
    assert jmespath.search("volumes[?name=='git-sync-ssh-key'].secret.secretName", spec) == ["tripclick-git-ssh"]

    base = jmespath.search("containers[?name=='base'] | [0]", spec)
    tls = jmespath.search(f"volumeMounts[?mountPath=='{TLS_MOUNT}'] | [0]", base)
    assert tls == {"name": "docker-tls", "mountPath": TLS_MOUNT, "readOnly": True}
    volume = jmespath.search("volumes[?name=='docker-tls'] | [0]", spec)
    assert volume["secret"]["secretName"] == "tripclick-docker-tls" and volume["secret"]["defaultMode"] == 0o440
    assert [v["name"] for v in spec["volumes"]].count("docker-tls") == 1

    assert base["envFrom"] == [
        {"configMapRef": {"name": "tripclick-variables"}},
        # The DAG's Connections, the whole Secret: not optional, a task cannot run without them.
        {"secretRef": {"name": "tripclick-connections"}},
        # Email alerts' server, optional: a release without the Secret starts all the same.
        {"secretRef": {"name": "tripclick-smtp", "optional": True}},
    ]
    # Each Connection from that Secret, as `make secrets` writes it.
    from tests.chart import pod_files

    assert {f"AIRFLOW_CONN_{conn}" for conn in CONNECTIONS} <= pod_files.env_names(base)
    for container in _containers(spec):
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, (container["name"], kind)
    assert spec["securityContext"]["runAsUser"] == 50000
    account = chartlib.find(_objs(full_renders, combo), "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False, "task pods need no Kubernetes API token"
    assert "hostNetwork" not in spec, "host networking is for Spark tasks only (their pod override)"


@pytest.mark.parametrize("combo", COMBOS)
def test_every_airflow_container_loads_the_connections(full_renders, combo):
    """The official chart gives extraEnvFrom to every container it gives the Variables' ConfigMap (the same
    envFrom list): each of them, the task pods, scheduler, dag-processor and triggerer included, gets the
    Connections Secret too."""
    objs = _objs(full_renders, combo)
    specs = {o["metadata"]["name"]: chartlib.pod_spec(o) for o in objs if chartlib.pod_spec(o)}
    specs["pod-template"] = chartlib.pod_template(objs)["spec"]
    variables = {"configMapRef": {"name": "tripclick-variables"}}
    connections = {"secretRef": {"name": "tripclick-connections"}}
    loading = {
        (name, c["name"]): connections in (c.get("envFrom") or [])
        for name, spec in specs.items()
        for c in _containers(spec)
        if variables in (c.get("envFrom") or [])
    }
    assert {name for name, _ in loading} >= {
        "pod-template",
        "tripclick-scheduler",
        "tripclick-dag-processor",
        "tripclick-triggerer",
        "tripclick-api-server",
    }
    assert [key for key, loads in loading.items() if not loads] == []


@pytest.mark.parametrize("combo", COMBOS)
def test_every_container_has_requests_and_limits(full_renders, combo):
    missing = []
    for obj in _objs(full_renders, combo):
        spec = chartlib.pod_spec(obj)
        for container in _containers(spec) if spec else []:
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                if set(resources.get(kind) or {}) != {"cpu", "memory"}:
                    missing.append(f"{obj['metadata']['name']}/{container['name']}: {kind}")
    assert missing == []


@pytest.mark.parametrize("combo", COMBOS)
def test_airflow_pods_run_unprivileged(full_renders, combo):
    objs = _objs(full_renders, combo)
    specs = {o["metadata"]["name"]: chartlib.pod_spec(o) for o in objs if chartlib.pod_spec(o)}
    specs["pod-template"] = chartlib.pod_template(objs)["spec"]
    specs.pop("tripclick-postgresql", None)  # Bitnami's own non-root settings (kind only)
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in _containers(spec):
            context = container.get("securityContext") or {}
            assert context.get("allowPrivilegeEscalation") is False, (name, container["name"])
            assert context.get("capabilities") == {"drop": ["ALL"]}, (name, container["name"])


@pytest.mark.parametrize("combo", COMBOS)
def test_only_the_scheduler_and_api_server_hold_a_kubernetes_token(full_renders, combo):
    objs = _objs(full_renders, combo)
    accounts = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ServiceAccount"}
    holders = set()
    for obj in objs:
        spec = chartlib.pod_spec(obj)
        if spec and obj["metadata"]["labels"].get("tier") == "airflow":
            account = accounts[spec["serviceAccountName"]]
            if spec.get("automountServiceAccountToken", account.get("automountServiceAccountToken", True)):
                holders.add(obj["metadata"]["name"])
    assert holders == {"tripclick-scheduler", "tripclick-api-server"}


@pytest.mark.parametrize("combo", COMBOS)
def test_official_chart_sees_no_deprecated_key(full_renders, combo):
    notes = full_renders[combo]["tripclick-orchestration/charts/airflow/templates/NOTES.txt"]
    assert "Thank you for installing Apache Airflow 3.3.2" in notes
    assert "DEPRECATION WARNING" not in notes, notes


@pytest.mark.parametrize("combo", COMBOS)
def test_api_server_service_matches_the_port_forward_in_notes(full_renders, combo):
    objs = _objs(full_renders, combo)
    service = chartlib.find(objs, "Service", "tripclick-api-server")
    assert jmespath.search("spec.ports[?name=='api-server'].port", service) == [8080]
    assert service["spec"]["selector"]["component"] == "api-server"
    notes = chartlib.notes(full_renders[combo])
    assert "kubectl port-forward -n airflow svc/tripclick-api-server 8080:8080" in notes


@pytest.mark.parametrize("combo", COMBOS)
def test_no_secret_value_in_any_rendered_object(full_renders, combo):
    objs = _objs(full_renders, combo)
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "Secret"] == []
    env = [
        (o["metadata"]["name"], e)
        for o in objs + [chartlib.pod_template(objs) | {"metadata": {"name": "pod-template"}}]
        for e in jmespath.search("spec.template.spec.[initContainers, containers][][].env[]", o)
        or jmespath.search("spec.[initContainers, containers][][].env[]", o)
        or []
    ]
    sensitive = [
        (name, e)
        for name, e in env
        if re.search("AIRFLOW_CONN_|SQL_ALCHEMY_CONN|PASSWORD|SECRET|FERNET|TOKEN|_KEY$", e["name"])
    ]
    # The search reaches every workload's env and the task pods'.
    assert {name for name, _ in env} >= {"tripclick-scheduler", "tripclick-api-server", "pod-template"}
    # The DAG's Connections are not set one by one: they come whole from their Secret (envFrom), so no object
    # holds one (the chart's own AIRFLOW_CONN_AIRFLOW_DB is a secretKeyRef, checked with the rest below).
    dag_connections = {f"AIRFLOW_CONN_{c}" for c in CONNECTIONS}
    assert [f"{name}: {e['name']}" for name, e in env if e["name"] in dag_connections] == []
    literal = [f"{name}: {e['name']}" for name, e in sensitive if not e["name"].endswith("_FILE") and "value" in e]
    assert literal == []
    text = "\n".join(full_renders[combo].values())
    for leak in ("postgres:postgres@", "admin:admin@", "-----BEGIN", "hooks.slack.com/services/T"):
        assert leak not in text
    cfg = chartlib.airflow_cfg(objs)
    for section in cfg.sections():
        for key, value in cfg[section].items():
            if re.search("password|secret|fernet|sql_alchemy_conn", key) and not key.endswith("_file"):
                assert value in ("", "None"), f"[{section}] {key} is set in the ConfigMap"


def test_production_logs_go_to_s3_and_the_triggerer_volume_fits_the_node(full_renders):
    objs = _objs(full_renders, "base+k3s-ec2")
    logging = chartlib.airflow_cfg(objs)["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"] == "s3://tripclick-airflow-logs/logs"
    triggerer = chartlib.find(objs, "StatefulSet", "tripclick-triggerer")
    claim = triggerer["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "2Gi"
    assert claim["storageClassName"] == "local-path"


@pytest.mark.parametrize("combo", ["base+k3s-ec2", "base+kind"])
def test_the_fab_admin_is_created_from_the_secret_by_a_hook_job(full_renders, combo):
    """FAB keeps users in the metadata database; the first admin is made by the wrapper's hook Job from the
    Secret's keys (env from secretKeyRef, never an argument), after the migration, as the image's user."""
    objs = _objs(full_renders, combo)
    core = chartlib.airflow_cfg(objs)["core"]
    assert core["auth_manager"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert not [k for k in core if k.startswith("simple_auth_manager")]
    assert not [o for o in objs if "create-user" in o["metadata"]["name"] and o["kind"] == "Job"]
    job = chartlib.find(objs, "Job", "tripclick-admin-user")
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    migrate = chartlib.find(objs, "Job", "tripclick-run-airflow-migrations")
    migrate_hooks = migrate["metadata"].get("annotations") or {}
    if "helm.sh/hook-weight" in migrate_hooks:
        assert int(hooks["helm.sh/hook-weight"]) > int(migrate_hooks["helm.sh/hook-weight"])
    spec = job["spec"]["template"]["spec"]
    (wait,) = spec["initContainers"]
    assert wait["command"][:3] == ["airflow", "db", "check-migrations"]
    (main,) = spec["containers"]
    env = {e["name"]: e for e in main["env"]}
    assert env["ADMIN_USERNAME"]["valueFrom"] == {"secretKeyRef": {"name": "tripclick-admin", "key": "username"}}
    assert env["ADMIN_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "tripclick-admin", "key": "password"}}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"]["key"] == "connection"
    assert not [e for e in main["env"] if "value" in e], "the Job's environment comes from Secrets only"
    assert main["command"][:2] == ["python", "-c"]
    script = main["command"][2]
    assert script == (chartlib.CHART / "files" / "create_admin.py").read_text()
    assert "ADMIN_PASSWORD" in script and "sys.argv" not in script
    assert "$(ADMIN_PASSWORD)" not in json.dumps(main), "Kubernetes would expand it into the command line"
    assert spec["securityContext"]["runAsUser"] == 50000 and spec["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["automountServiceAccountToken"] is False
    assert main["image"] == wait["image"] == chartlib.pod_template(objs)["spec"]["containers"][0]["image"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert {"tier": "airflow", "release": "tripclick"}.items() <= labels.items(), "the release's NetworkPolicies"
    config_map = spec["volumes"][0]["configMap"]["name"]
    chartlib.find(objs, "ConfigMap", config_map)


@pytest.mark.parametrize("combo", ["base+k3s-ec2", "base+kind"])
def test_no_password_is_a_literal_anywhere_in_the_release(full_renders, combo):
    """Every environment variable named like a password, the admin's included, is read from a Secret."""
    objs = _objs(full_renders, combo)
    found = [
        f"{where}: {node['name']}"
        for obj in objs
        for where, node in chartlib.mappings(chartlib.strip_source(obj), f"{obj['kind']}/{obj['metadata']['name']}")
        if isinstance(node.get("name"), str) and "PASSWORD" in node["name"].upper() and "value" in node
    ]
    assert found == []
    admin = chartlib.find(objs, "Job", "tripclick-admin-user")
    assert "ADMIN_PASSWORD" in json.dumps(admin), "the check must see the admin Job"


def test_kind_uses_the_local_image_and_the_bundled_database(full_renders):
    objs = _objs(full_renders, "base+kind")
    images = set(jmespath.search("[].spec.template.spec.containers[].image", objs))
    assert "tripclick-airflow:dev" in images
    assert chartlib.pod_template(objs)["spec"]["containers"][0]["image"] == "tripclick-airflow:dev"
    postgres = chartlib.find(objs, "StatefulSet", "tripclick-postgresql")
    env = jmespath.search("spec.template.spec.containers[0].env[?name=='POSTGRES_PASSWORD'] | [0]", postgres)
    assert env["valueFrom"]["secretKeyRef"] == {"name": "tripclick-postgresql", "key": "postgres-password"}
