"""Where the local cluster lives, its addresses and ports, and the versions it is built from.

Every other module takes these from here, so one change moves the whole cluster.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
GOMOD = PACKAGE / "gomod"
VERSIONS_FILE = PACKAGE / "versions.env"
STATE = Path(os.environ.get("CLUSTER_STATE", REPO / ".state" / "cluster"))
BIN = STATE / "bin"

# Pods get addresses from POD_CIDR (k3s's defaults, both private and unused on this host); the node's share of
# it is NODE_POD_CIDR, whose first address is the bridge's own, which is also the node's address: the
# apiserver listens there so that pods reach it through the `kubernetes` Service, and nothing of the cluster
# listens on the outward interface.
POD_CIDR = "10.42.0.0/16"
NODE_POD_CIDR = "10.42.0.0/24"
SERVICE_CIDR = "10.43.0.0/16"
BRIDGE = "tcl0"
NODE_IP = str(next(ipaddress.ip_network(NODE_POD_CIDR).hosts()))
API_SERVICE_IP = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
DNS_SERVICE_IP = "10.43.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "tripclick-node"

# Host ports, away from Kubernetes' defaults and from the local stack's ports, so that this cluster can run
# beside another one and beside the end-to-end stack.
PORTS = {
    "etcd-client": 12379,
    "etcd-peer": 12380,
    "apiserver": 16443,
    "controller-manager": 11257,
    "scheduler": 11259,
    "kubelet": 11250,
    "kubelet-healthz": 11248,
    "kube-proxy-healthz": 11256,
    "kube-proxy-metrics": 11249,
}

# Chain and ipset name prefixes that the cluster's programs create on the host: cluster-down removes those
# that were not there before cluster-up.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "TCL-")
IPSET_PREFIXES = ("KUBE-", "kube-router-", "inet6:")


def versions() -> dict[str, str]:
    """NAME=value lines of versions.env."""
    out = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        m = re.fullmatch(r"([A-Z_]+)=(\S+)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def state(*parts: str) -> Path:
    return STATE.joinpath(*parts)


def image(name: str) -> str:
    """The tag of an image built here, pinned to the version it is built from."""
    v = versions()
    tags = {
        "pause": f"tripclick.local/pause:{v['PAUSE']}",
        "coredns": f"tripclick.local/coredns:{v['COREDNS']}",
        "smoke": f"tripclick.local/smoke:{v['KUBERNETES']}",
    }
    return tags[name]
