"""Configuration files of the cluster's programs, written under .state/cluster/etc before they start."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from . import pki, settings

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins


def etc(name: str) -> Path:
    d = settings.state("etc")
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def containerd_socket() -> Path:
    return settings.state("containerd", "containerd.sock")


def cni_conf_dir() -> Path:
    return settings.state("cni", "net.d")


def containerd_config() -> str:
    root = settings.state("containerd")
    sock = containerd_socket()
    runtime = '[plugins."io.containerd.cri.v1.runtime"'
    return f"""\
version = 3
root = "{root / "root"}"
state = "{root / "state"}"
# NRI, the OPT plugin and the tracing exporters use fixed paths under /run, /opt and /var; off.
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{settings.image("pause")}"

{runtime}]
  # Pod network namespaces live under the state folder instead of /run/netns, so cluster-down finds them all.
  netns_mounts_under_state_dir = true
  # This host withholds CAP_SYS_RESOURCE, so no process may lower an OOM score (runc init fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied" for the pause container's -998): pods get
  # at least containerd's own score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{cni_conf_dir()}"
    max_conf_num = 1
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{settings.BIN / "runc"}"
        Root = "{root / "runc"}"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  # kubectl exec/logs/port-forward stream through here; loopback only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_config() -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "tripclick",
        "plugins": [
            {
                "type": "bridge",
                "bridge": settings.BRIDGE,
                "isGateway": True,
                # No masquerade: pod traffic never leaves the host, so it never needs the host's address.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(settings.state("cni", "ipam")),
                    "ranges": [[{"subnet": settings.NODE_POD_CIDR, "gateway": settings.NODE_IP}]],
                    # Pods get routes to the cluster's own ranges only, no default route: a packet to any
                    # other address fails inside the pod.
                    "routes": [{"dst": settings.POD_CIDR}, {"dst": settings.SERVICE_CIDR}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config() -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This host's cgroup v1 layout: 1.35+ refuse to start on it without this switch.
        "failCgroupV1": False,
        # The kubelet's own OOM score stays as started: this host cannot lower it (no CAP_SYS_RESOURCE).
        "oomScoreAdj": 0,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
        "address": settings.NODE_IP,
        "port": settings.PORTS["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.PORTS["kubelet-healthz"],
        "tlsCertFile": str(pki.path("kubelet-server")),
        "tlsPrivateKeyFile": str(pki.path("kubelet-server", "key")),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.path("ca"))},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [settings.DNS_SERVICE_IP],
        "clusterDomain": settings.CLUSTER_DOMAIN,
        # Pods with dnsPolicy Default read this file: it names only the cluster's DNS, never the host's resolver.
        "resolvConf": str(etc("resolv.conf")),
        # Images cannot be pulled again here: never collect them, and never evict for disk pressure (as kind).
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"},
        "failSwapOn": False,
        "rotateCertificates": False,
        "serializeImagePulls": False,
        "podCIDR": settings.NODE_POD_CIDR,
        "hairpinMode": "hairpin-veth",
        "maxPods": 110,
        "staticPodPath": "",
        "podLogsDir": str(settings.state("pod-logs")),
    }


def kube_proxy_config() -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "oomScoreAdj": 0,  # as the kubelet's: this host cannot lower it
        "clientConnection": {"kubeconfig": str(pki.kubeconfig("kube-proxy"))},
        "hostnameOverride": settings.NODE_NAME,
        "clusterCIDR": settings.POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{settings.PORTS['kube-proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{settings.PORTS['kube-proxy-metrics']}",
        # NodePorts answer on the bridge address only, never on the outward interface or on loopback (which
        # would need route_localnet).
        "nodePortAddresses": [f"{settings.NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False},
        # Leave the host's conntrack table size and timeouts as they are (as kind does).
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def write_all() -> None:
    etc("containerd.toml").write_text(containerd_config())
    cni_conf_dir().mkdir(parents=True, exist_ok=True)
    (cni_conf_dir() / "10-tripclick.conflist").write_text(json.dumps(cni_config(), indent=2) + "\n")
    etc("kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(), sort_keys=False))
    etc("kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(), sort_keys=False))
    etc("resolv.conf").write_text(
        f"nameserver {settings.DNS_SERVICE_IP}\nsearch {settings.CLUSTER_DOMAIN}\noptions ndots:5\n"
    )
