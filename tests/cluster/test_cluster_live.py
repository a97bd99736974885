"""The cluster layer: a real one-node Kubernetes from cluster/ on this host (root; `make test-cluster`).

cluster-up (building whatever is missing), a Deployment from an image built here reached through its Service
by DNS name from another pod, a NetworkPolicy enforced, the stamped version reported, a capture on the outward
interface for the whole run showing no packet of the cluster's, and cluster-down leaving nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster import components, dns, down, host, settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cluster layer needs root")

NAMESPACE = "smoke"
# What a pod tries to reach outside: a name nobody else on this machine asks for, and a port nothing else uses,
# so that any sight of either in the capture can only be the cluster's.
PROBE_NAME = f"leak-probe-{secrets.token_hex(4)}.example.com"
PROBE_PORT = 47
SERVER = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {settings.image("smoke")}
          imagePullPolicy: Never
          args: [serve, ":8080"]
          ports: [{{containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
DENY_INGRESS = f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-ingress, namespace: {NAMESPACE}}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress]
"""


def _apply(text: str) -> None:
    subprocess.run(
        [
            str(settings.BIN / "kubectl"),
            f"--kubeconfig={settings.state('pki', 'admin.kubeconfig')}",
            "apply",
            "-f",
            "-",
        ],
        input=text,
        text=True,
        check=True,
        capture_output=True,
    )


def _client(name: str, url: str, wait: str = "0s") -> tuple[str, str]:
    """Run `smoke get url wait` in a pod of its own; (its phase, its log)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "get",
                    "image": settings.image("smoke"),
                    "imagePullPolicy": "Never",
                    "args": ["get", url, wait],
                }
            ],
        },
    }
    _apply(json.dumps(pod))
    deadline = time.monotonic() + 90
    phase = ""
    while time.monotonic() < deadline:
        phase = components.kubectl("-n", NAMESPACE, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    log = components.kubectl("-n", NAMESPACE, "logs", name, check=False).stdout
    return phase, log


def _outward_interface() -> str:
    route = host.run("ip", "route", "show", "default").stdout.split()
    return route[route.index("dev") + 1]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """tcpdump on the outward interface for the whole layer: every packet to or from the cluster's ranges, every
    DNS packet (whose names the test reads) and every packet of the probe port."""
    pcap = tmp_path_factory.mktemp("capture") / "outward.pcap"
    ranges = f"net {settings.POD_CIDR} or net {settings.SERVICE_CIDR}"
    tcpdump = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            _outward_interface(),
            "-nn",
            "-U",
            "-s",
            "512",
            "-w",
            str(pcap),
            f"{ranges} or port 53 or port {PROBE_PORT}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    assert tcpdump.poll() is None, tcpdump.stderr.read()
    # The control that shows the capture sees the outward DNS at all: the host looks up a package registry
    # (what pip does anyway) through the outside resolver.
    subprocess.run(["getent", "ahostsv4", "pypi.org"], capture_output=True, timeout=10)
    yield {"pcap": pcap, "process": tcpdump}
    if tcpdump.poll() is None:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(10)


@pytest.fixture(scope="module")
def cluster(capture):
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "cluster", "up"], cwd=settings.REPO, timeout=3600)
    print(f"\ncluster-up took {time.monotonic() - start:.0f} s")
    assert r.returncode == 0, "cluster-up failed; its output is above, the logs are in .state/cluster/logs"
    yield
    if host.before_path().exists():
        subprocess.run([sys.executable, "-m", "cluster", "down"], cwd=settings.REPO, timeout=600)


def test_version_is_the_pinned_release(cluster):
    out = json.loads(components.kubectl("version", "-o", "json").stdout)
    pinned = settings.versions()["KUBERNETES"]
    assert out["serverVersion"]["gitVersion"] == pinned
    assert out["clientVersion"]["gitVersion"] == pinned


def test_node_is_ready(cluster):
    status = components.kubectl(
        "get", "node", settings.NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )
    assert status.stdout == "True"


def test_deployment_is_reached_through_its_service_by_dns_name(cluster):
    _apply(SERVER)
    components.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    # A Service is wired a moment after it is made (kube-proxy syncs at most once a second): tries for 20 s.
    phase, log = _client("get-by-name", f"http://web.{NAMESPACE}.svc.{settings.CLUSTER_DOMAIN}/", "20s")
    assert phase == "Succeeded", log
    assert "smoke web-" in log
    # The short name goes through the pod's search path, as most clients use it.
    phase, log = _client("get-by-short-name", "http://web/", "20s")
    assert phase == "Succeeded", log


def test_network_policy_is_enforced(cluster):
    _apply(DENY_INGRESS)
    # kube-router applies a new policy within a few seconds; a client that still got through came too early.
    outcomes = []
    for attempt in range(4):
        phase, log = _client(f"get-denied-{attempt}", f"http://web.{NAMESPACE}.svc.{settings.CLUSTER_DOMAIN}/")
        outcomes.append(phase)
        if phase == "Failed":
            break
        time.sleep(3)
    assert outcomes[-1] == "Failed", f"every client got through the policy: {outcomes}; last log: {log}"
    components.kubectl("-n", NAMESPACE, "delete", "networkpolicy", "deny-ingress")
    phase, log = _client("get-allowed-again", f"http://web.{NAMESPACE}.svc.{settings.CLUSTER_DOMAIN}/", "20s")
    assert phase == "Succeeded", log


def _outside_resolver() -> str:
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        if line.startswith("nameserver"):
            return line.split()[1]
    return "192.0.2.1"


def test_a_pod_reaches_nothing_outside_the_cluster(cluster):
    """The attempts the capture below must not see: a pod asks for an outside name and calls the host's outside
    resolver directly; both fail (pods have routes to the cluster's ranges only, and the guard drops the rest)."""
    phase, log = _client("get-outside-name", f"http://{PROBE_NAME}/")
    assert phase == "Failed", log
    phase, log = _client("get-outside-address", f"http://{_outside_resolver()}:{PROBE_PORT}/")
    assert phase == "Failed", log


def test_cluster_dns_answers_cluster_names_only(cluster):
    pod_ip = components.kubectl(
        "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[0].status.podIP}"
    ).stdout
    code, addresses = dns.query_a(pod_ip, f"web.{NAMESPACE}.svc.{settings.CLUSTER_DOMAIN}")
    assert code == 0 and addresses
    code, addresses = dns.query_a(pod_ip, "pypi.org")
    assert addresses == [] and code != 0  # REFUSED: no zone, and no forward plugin to ask anyone else


def test_cluster_down_leaves_nothing(cluster, capture):
    before = json.loads(host.before_path().read_text())
    r = subprocess.run([sys.executable, "-m", "cluster", "down"], cwd=settings.REPO, capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert down.leftovers() == []
    assert host.sysctl_get("net/ipv4/ip_forward") == before["sysctls"]["net/ipv4/ip_forward"]
    assert [m for m in host.mounts_under(settings.STATE)] == []


def test_no_packet_of_the_cluster_left_the_machine(capture):
    tcpdump = capture["process"]
    if tcpdump.poll() is None:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(10)
    lines = subprocess.run(
        ["tcpdump", "-r", str(capture["pcap"]), "-nn"], capture_output=True, text=True
    ).stdout.splitlines()
    prefixes = tuple(c.split(".0.0/")[0] + "." for c in (settings.POD_CIDR, settings.SERVICE_CIDR))
    of_ranges = [line for line in lines if any(f" {p}" in line for p in prefixes)]
    names = [
        line for line in lines if any(n in line for n in (settings.CLUSTER_DOMAIN, f"{NAMESPACE}.svc", PROBE_NAME))
    ]
    probe = [line for line in lines if re.search(rf"\.{PROBE_PORT}[: ]", line)]
    print(f"\n{len(lines)} DNS, cluster-range or probe-port packets on {_outward_interface()} during the layer")
    assert any("pypi.org" in line for line in lines), "the capture missed the host's own DNS lookup (the control)"
    assert of_ranges == []
    assert names == []
    assert probe == []
    assert Path(capture["pcap"]).exists()
