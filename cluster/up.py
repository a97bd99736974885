"""cluster-up: preflight, build, images, host network, certificates, then each component in order, then the
cluster's own objects (CoreDNS, kube-router's RBAC); done when the node is Ready and the DNS answers."""

from __future__ import annotations

import string
import time

from . import build, components, configs, dns, host, images, pki, preflight, proc, settings

MANIFESTS = settings.PACKAGE / "manifests"


def is_up() -> bool:
    return host.before_path().exists()


def apply(manifest: str) -> None:
    text = string.Template((MANIFESTS / manifest).read_text()).substitute(
        IMAGE=settings.image("coredns"), DNS_IP=settings.DNS_SERVICE_IP, DOMAIN=settings.CLUSTER_DOMAIN
    )
    path = settings.state("etc", manifest)
    path.write_text(text)
    components.kubectl("apply", "-f", str(path))


def _node_ready() -> bool:
    r = components.kubectl(
        "get", "node", settings.NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
    )
    return r.stdout.strip() == "True"


def _dns_answers() -> bool:
    r = components.kubectl(
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "jsonpath={.items[0].status.podIP}",
        check=False,
    )
    pod_ip = r.stdout.strip()
    if not pod_ip:
        return False
    code, addresses = dns.query_a(pod_ip, f"kubernetes.default.svc.{settings.CLUSTER_DOMAIN}")
    return code == 0 and addresses == [settings.API_SERVICE_IP]


def up() -> int:
    t0 = time.monotonic()
    if is_up():
        missing = [c.name for c in components.COMPONENTS if not proc.running(c.name)]
        if not missing:
            print("cluster is up already")
            return 0
        print(f"a cluster was started here and {', '.join(missing)} is not running: run make cluster-down first")
        return 1
    found = preflight.problems()
    if found:
        print("cluster-up cannot start (nothing was changed):")
        for p in found:
            print(f"  - {p}")
        return 1
    print("== build")
    build.build()
    print("== images")
    tarballs = images.ensure_tarballs()
    print("== host")
    before = host.record()
    for change in host.setup_network(before):
        print(f"  {change}")
    pki.ensure()
    configs.write_all()
    for c in components.COMPONENTS:
        start = time.monotonic()
        proc.start(c.name, c.command())
        proc.wait_for(c.name, c.ready, c.timeout, c.name)
        print(f"  {c.name} up in {time.monotonic() - start:.1f} s", flush=True)
        if c.name == "containerd":
            images.import_all(tarballs, components.ctr())
        if c.name == "kube-apiserver":
            apply("kube-router-rbac.yaml")
    waited = proc.wait_for("node Ready", _node_ready, 120, "kubelet")
    print(f"  node {settings.NODE_NAME} Ready after {waited:.1f} s")
    apply("coredns.yaml")
    waited = proc.wait_for("CoreDNS answering", _dns_answers, 180)
    print(f"  CoreDNS answers after {waited:.1f} s")
    print(f"cluster up in {time.monotonic() - t0:.0f} s; kubectl --kubeconfig {pki.kubeconfig('admin')}")
    return 0
