"""Everything cluster-up needs from the host, checked before it changes anything: one line per problem, with
the fix."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import psutil

from . import host, settings

TOOLS = {
    "go": "install Go 1.26 (the machine's toolchain)",
    "gcc": "apt-get install gcc libc6-dev",
    "pkg-config": "apt-get install pkg-config",
    "docker": "apt-get install docker.io",
    "dockerd": "apt-get install docker.io",
    "iptables": "apt-get install iptables",
    "iptables-save": "apt-get install iptables",
    "ip6tables-save": "apt-get install iptables",
    "ip": "apt-get install iproute2",
    "ipset": "apt-get install ipset (kube-router's policy sets)",
    "conntrack": "apt-get install conntrack (kube-proxy clears stale UDP entries with it)",
    "mount": "apt-get install mount",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "devices", "freezer", "blkio")


def problems(*, for_build: bool = True) -> list[str]:
    out = []
    if os.geteuid() != 0:
        out.append("not root: the kubelet, containerd and the network set-up need root; run as root")
    for tool, fix in TOOLS.items():
        if not shutil.which(tool):
            out.append(f"{tool} missing: {fix}")
    for plugin in CNI_PLUGINS:
        if not Path("/usr/lib/cni", plugin).exists():
            out.append(f"CNI plugin {plugin} missing: apt-get install containernetworking-plugins")
    seccomp = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "libseccomp"]).returncode == 0
    if for_build and not seccomp:
        out.append("libseccomp missing (runc is built with seccomp): apt-get install libseccomp-dev")
    out += _kernel()
    out += _ports()
    out += _network()
    return out


def _kernel() -> list[str]:
    out = []
    if "overlay" not in Path("/proc/filesystems").read_text():
        out.append(
            "overlayfs missing from the kernel: containerd's snapshotter needs it (a kernel with CONFIG_OVERLAY_FS)"
        )
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        out.append("bridge netfilter missing: network policies and Services need br_netfilter (modprobe br_netfilter)")
    elif host.sysctl_get("net/bridge/bridge-nf-call-iptables") != "1":
        out.append("net.bridge.bridge-nf-call-iptables is 0: sysctl -w net.bridge.bridge-nf-call-iptables=1")
    for c in CGROUP_CONTROLLERS:
        if not Path("/sys/fs/cgroup", c).is_dir():
            out.append(f"cgroup controller {c} not mounted under /sys/fs/cgroup: the kubelet needs it")
    if not Path("/dev/kmsg").exists():
        out.append("/dev/kmsg missing: the kubelet's OOM watcher reads it (mknod /dev/kmsg c 1 11)")
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    if swaps:
        out.append("swap is on: the kubelet is configured for no swap; swapoff -a")
    return out


def _ports() -> list[str]:
    listening = {c.laddr.port: c.pid for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    out = []
    for what, port in settings.PORTS.items():
        if port in listening:
            owner = psutil.Process(listening[port]).name() if listening[port] else "another process"
            out.append(f"port {port} ({what}) is taken by {owner}: stop it, or change PORTS in cluster/settings.py")
    return out


def _network() -> list[str]:
    out = []
    ours = [ipaddress.ip_network(c) for c in (settings.POD_CIDR, settings.SERVICE_CIDR)]
    for line in host.run("ip", "-4", "-o", "addr", check=False).stdout.splitlines():
        parts = line.split()
        dev, addr = parts[1], ipaddress.ip_interface(parts[3])
        if any(addr.network.overlaps(n) for n in ours):
            out.append(
                f"{dev} holds {addr}, inside the cluster's ranges: remove it or change the ranges in settings.py"
            )
    for line in host.run("ip", "-4", "route", check=False).stdout.splitlines():
        dest = line.split()[0]
        if dest != "default" and not line.startswith(("unreachable", "blackhole")):
            try:
                net = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                continue
            if any(net.overlaps(n) for n in ours):
                out.append(f"route '{line.strip()}' overlaps the cluster's ranges: remove it or change settings.py")
    foreign = host.foreign_cluster_chains()
    if foreign:
        out.append(
            f"another cluster's iptables chains are here ({', '.join(foreign[:3])}...): stop it, or make cluster-down"
        )
    if host.run("ip", "link", "show", settings.BRIDGE, check=False).returncode == 0:
        out.append(f"interface {settings.BRIDGE} exists already: make cluster-down removes a cluster's leftovers")
    return out
