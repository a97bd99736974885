"""The release exactly as `make kind-test` installs it (base + kind + the kind-test overlay + its --set),
rendered with the official chart like `helm upgrade --install` would, and validated offline.

Needs the official chart 1.21.0 source (AIRFLOW_CHART_SOURCE, or chart/charts/ after
`helm dependency build chart`); without it these tests skip and say so.
"""

from __future__ import annotations

import pytest
import yaml

from tests.chart import chartlib

KIND_DIR = chartlib.REPO / "scripts" / "kind"
TAG = "3.3.2-0000000"
COMMIT = "0" * 40
# What kind-test.sh adds with --set.
SETS = {
    "airflow": {
        "defaultAirflowTag": TAG,
        "images": {"airflow": {"tag": TAG}, "pod_template": {"tag": TAG}},
        "dags": {"gitSync": {"ref": COMMIT}},
    }
}


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    source, reason = chartlib.official_chart_source()
    if source is None:
        pytest.skip(reason)
    patch = chartlib.deep_merge(chartlib.load_yaml(KIND_DIR / "values-kind-test.yaml"), SETS)
    chart = chartlib.assemble(tmp_path_factory.mktemp("kind"), source)
    return chartlib.objects(chartlib.render_chart(chart, "base+kind", patch, full=True))


@pytest.mark.parametrize("kube", ["1.30", "1.34"])
def test_release_validates_strictly(objs, kube):
    chartlib.validate_strictly(objs, kube)


def test_task_pods_get_the_shared_folders_the_tls_files_the_connections_and_the_gold_password(objs):
    spec = chartlib.pod_template(objs)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tripclick-state"]["hostPath"]["path"] == "/tripclick/state"
    assert volumes["tripclick-repo"]["hostPath"]["path"] == "/tripclick/repo"
    assert volumes["docker-tls"]["secret"]["secretName"] == "tripclick-docker-tls"
    (base,) = [c for c in spec["containers"] if c["name"] == "base"]
    mounts = {m["name"]: m["mountPath"] for m in base["volumeMounts"]}
    assert mounts["docker-tls"] == "/opt/airflow/secrets/docker-tls"
    assert mounts["tripclick-state"] == "/tripclick/state"
    env = {e["name"]: e for e in base["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "tripclick-gold-db", "key": "password"}
    # The test overlay's own secret list leaves the Connections to base.yaml's envFrom.
    assert {"secretRef": {"name": "tripclick-connections"}} in base["envFrom"]
    assert base["image"] == f"tripclick-airflow:{TAG}"


def test_git_sync_reads_the_commit_from_the_git_server_stand_in(objs):
    found = []
    for obj in objs:
        spec = chartlib.pod_spec(obj)
        for container in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "GITSYNC_REPO" in env:
                found.append((obj["metadata"]["name"], env["GITSYNC_REPO"], env.get("GITSYNC_REF")))
    assert found, "no git-sync container rendered"
    for name, repo, ref in found:
        assert repo == "git://git-server.tripclick-standins.svc:9418/repo", name
        assert ref == COMMIT, name


def test_network_policies_let_task_pods_reach_every_stand_in(objs):
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    egress_ports = {
        (peer.get("ipBlock", {}).get("cidr"), port.get("port"))
        for policy in policies
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        for port in rule.get("ports", [])
    }
    for port in (2376, 7077, 9418, 8080, 5432):
        assert ("10.244.0.0/16", port) in egress_ports, f"no egress rule to the stand-ins' pod range on {port}"
    rendered = yaml.safe_dump(policies)
    assert "2375" not in rendered, "the plain-text Docker port must never be opened"
