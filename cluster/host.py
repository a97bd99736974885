"""What the cluster changes on the host outside its state folder, and how cluster-down takes each change back.

Before anything starts, cluster-up records the host's iptables chains, ipsets and the sysctls the cluster's
programs may set (`before.json`); cluster-down removes only chains and sets that were not there then, and puts
back each sysctl that changed. Nothing here touches a chain, rule or set that another program made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path

from . import settings

# Sysctls that cluster-up sets (ip_forward) or that the kubelet and kube-proxy may set on start.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
)
TABLES = ("filter", "nat", "mangle", "raw")
# Paths outside .state/cluster that the programs write to whatever their configuration says: the kubelet's
# container-log symlinks and device-plugin socket, libcni's result cache, containerd's shim sockets.
HOST_PATHS = ("/var/log/containers", "/var/lib/kubelet", "/var/lib/cni", "/run/containerd")
GUARD = "TCL-GUARD"


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def sysctl_get(key: str) -> str | None:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError:
        return None


def sysctl_set(key: str, value: str) -> None:
    Path("/proc/sys", key).write_text(value + "\n")


def chains(binary: str = "iptables") -> dict[str, list[str]]:
    """table -> names of the non-built-in chains in it."""
    out = {}
    for table in TABLES:
        r = run(f"{binary}-save", "-t", table, check=False)
        out[table] = re.findall(r"^:(\S+) -", r.stdout, re.M)
    return out


def ipsets() -> list[str]:
    r = run("ipset", "list", "-n", check=False)
    return r.stdout.split() if r.returncode == 0 else []


def before_path() -> Path:
    return settings.state("run", "before.json")


def record() -> dict:
    """What the host looks like before the cluster touches it; kept until cluster-down has undone everything."""
    path = before_path()
    if path.exists():
        return json.loads(path.read_text())
    snapshot = {
        "chains": {b: chains(b) for b in ("iptables", "ip6tables")},
        "ipsets": ipsets(),
        "rules": rules_of_ours(),
        "sysctls": {k: sysctl_get(k) for k in SYSCTLS},
        "paths": [p for p in HOST_PATHS if Path(p).exists()],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=2) + "\n")
    return snapshot


def foreign_cluster_chains() -> list[str]:
    """Chains of another Kubernetes on this host's network namespace: a second one would fight over them."""
    found = []
    for binary in ("iptables", "ip6tables"):
        for table, names in chains(binary).items():
            found += [f"{binary} {table} {n}" for n in names if n.startswith(settings.CHAIN_PREFIXES)]
    return found


def setup_network(before: dict) -> list[str]:
    """Bridge with the node address, local routes for the cluster's ranges, the guard chains, ip_forward on."""
    done = []
    if run("ip", "link", "show", settings.BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", settings.BRIDGE, "type", "bridge")
        done.append(f"bridge {settings.BRIDGE}")
    prefix = settings.NODE_POD_CIDR.split("/")[1]
    if settings.NODE_IP not in run("ip", "-4", "addr", "show", "dev", settings.BRIDGE).stdout:
        run("ip", "addr", "add", f"{settings.NODE_IP}/{prefix}", "dev", settings.BRIDGE)
    run("ip", "link", "set", settings.BRIDGE, "up")
    # A packet to a pod or Service address that no pod and no kube-proxy rule takes dies here instead of
    # following the default route out of the machine (the bridge's /24 is more specific than these).
    for cidr in (settings.POD_CIDR, settings.SERVICE_CIDR):
        if cidr not in run("ip", "route", "show", "type", "unreachable").stdout:
            run("ip", "route", "add", "unreachable", cidr)
            done.append(f"route unreachable {cidr}")
    _guard()
    done.append(f"iptables raw/mangle {GUARD}")
    if sysctl_get("net/ipv4/ip_forward") != "1":
        sysctl_set("net/ipv4/ip_forward", "1")
        done.append(f"net.ipv4.ip_forward 1 (was {before['sysctls']['net/ipv4/ip_forward']})")
    return done


def _guard() -> None:
    """Pod traffic may go to pod and Service addresses only; nothing with a cluster source address leaves by
    any interface other than the bridge and loopback. kube-router's and kube-proxy's ACCEPT rules come later
    in the packet's path (filter table), so they cannot let such a packet past these."""
    rules = {
        "raw": ("PREROUTING", ["-i", settings.BRIDGE], [
            ["-d", settings.POD_CIDR, "-j", "RETURN"],
            ["-d", settings.SERVICE_CIDR, "-j", "RETURN"],
            ["-j", "DROP"],
        ]),
        "mangle": ("POSTROUTING", [], [
            ["-o", settings.BRIDGE, "-j", "RETURN"],
            ["-o", "lo", "-j", "RETURN"],
            ["-s", settings.POD_CIDR, "-j", "DROP"],
            ["-s", settings.SERVICE_CIDR, "-j", "DROP"],
        ]),
    }  # fmt: skip
    for table, (hook, match, body) in rules.items():
        if run("iptables", "-t", table, "-n", "-L", GUARD, check=False).returncode == 0:
            continue
        run("iptables", "-t", table, "-N", GUARD)
        for rule in body:
            run("iptables", "-t", table, "-A", GUARD, *rule)
        run("iptables", "-t", table, "-I", hook, "1", *match, "-j", GUARD)


def remove_chains(before: dict) -> list[str]:
    """Delete every chain with a cluster prefix that was not there before, and every rule that jumps to one."""
    removed = []
    for binary in ("iptables", "ip6tables"):
        old = before["chains"].get(binary, {})
        for table in TABLES:
            dump = run(f"{binary}-save", "-t", table, check=False).stdout
            ours = [
                c
                for c in re.findall(r"^:(\S+) -", dump, re.M)
                if c.startswith(settings.CHAIN_PREFIXES) and c not in old.get(table, [])
            ]
            if not ours:
                continue
            # Rules in chains that stay (built-in or someone else's) that jump to one of ours.
            for rule in re.findall(r"^-A (\S+) (.*)$", dump, re.M):
                chain, spec = rule
                target = re.search(r"-[jg] (\S+)", spec)
                if chain not in ours and target and target.group(1) in ours:
                    run(binary, "-t", table, "-D", chain, *_split(spec), check=False)
            for c in ours:
                run(binary, "-t", table, "-F", c, check=False)
            for c in ours:
                if run(binary, "-t", table, "-X", c, check=False).returncode == 0:
                    removed.append(f"{binary} {table} {c}")
    return removed


def rules_of_ours() -> list[str]:
    """Rules anywhere that name the bridge, a cluster range or a chain with a cluster prefix."""
    marks = (settings.BRIDGE, settings.POD_CIDR, settings.SERVICE_CIDR, *settings.CHAIN_PREFIXES)
    found = []
    for binary in ("iptables", "ip6tables"):
        for table in TABLES:
            dump = run(f"{binary}-save", "-t", table, check=False).stdout
            found += [
                f"{binary} {table}: {r}" for r in dump.splitlines() if r.startswith("-A") and any(m in r for m in marks)
            ]
    return found


def _split(spec: str) -> list[str]:
    import shlex

    return shlex.split(spec)


def remove_ipsets(before: dict) -> list[str]:
    removed = []
    for name in ipsets():
        new = name.startswith(settings.IPSET_PREFIXES) and name not in before.get("ipsets", [])
        if new and run("ipset", "destroy", name, check=False).returncode == 0:
            removed.append(f"ipset {name}")
    return removed


def remove_network() -> list[str]:
    removed = []
    # Veths still plugged into the bridge (their pod namespaces are gone by now, so normally none).
    for line in run("ip", "-o", "link", "show", "master", settings.BRIDGE, check=False).stdout.splitlines():
        veth = line.split(":")[1].strip().split("@")[0]
        run("ip", "link", "del", veth, check=False)
        removed.append(f"veth {veth}")
    if run("ip", "link", "show", settings.BRIDGE, check=False).returncode == 0:
        run("ip", "link", "del", settings.BRIDGE)
        removed.append(f"bridge {settings.BRIDGE}")
    for cidr in (settings.POD_CIDR, settings.SERVICE_CIDR):
        if run("ip", "route", "del", "unreachable", cidr, check=False).returncode == 0:
            removed.append(f"route unreachable {cidr}")
    run("conntrack", "-D", "-s", settings.POD_CIDR, check=False)
    run("conntrack", "-D", "-d", settings.SERVICE_CIDR, check=False)
    return removed


def restore_sysctls(before: dict) -> list[str]:
    restored = []
    for key, value in before.get("sysctls", {}).items():
        now = sysctl_get(key)
        if value is not None and now is not None and now != value:
            with contextlib.suppress(OSError):
                sysctl_set(key, value)
                restored.append(f"{key.replace('/', '.')} {now} -> {value}")
    return restored


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    points = []
    root_s = str(root)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == root_s or point.startswith(root_s + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def unmount_all(root: Path) -> list[str]:
    removed = []
    for _ in range(5):  # a mount can hide another at the same point
        points = mounts_under(root)
        if not points:
            break
        for p in points:
            if run("umount", p, check=False).returncode != 0:
                run("umount", "-l", p, check=False)
            removed.append(f"mount {p}")
    return removed


def cgroup_dirs() -> list[Path]:
    """The kubelet's pod cgroups (cgroupfs driver) in every v1 hierarchy, deepest first."""
    found = []
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir() if base.is_dir() else ():
        top = hierarchy / "kubepods"
        if top.is_dir() and not top.is_symlink():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: -len(p.parts))


def remove_cgroups() -> list[str]:
    removed = 0
    for d in cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()
            removed += 1
    return [f"{removed} pod cgroup folders"] if removed else []


def pod_processes() -> list[int]:
    """Processes in the kubelet's pod cgroups: only this cluster's pods, since another cluster refuses to
    start beside it (foreign_cluster_chains)."""
    pids = set()
    for d in cgroup_dirs():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    return sorted(pids)


def host_files(before: dict) -> list[Path]:
    """The cluster's files in HOST_PATHS: symlinks to its pod logs, its CNI results, and each whole path that
    did not exist before cluster-up."""
    found: list[Path] = []
    logs = str(settings.state("pod-logs"))
    containers = Path("/var/log/containers")
    if containers.is_dir():
        found += [p for p in containers.iterdir() if p.is_symlink() and os.readlink(p).startswith(logs)]
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        ours = [p for p in results.iterdir() if p.name.startswith("tripclick-")]
        sandboxes = {p.name.removeprefix("tripclick-").rsplit("-", 1)[0] for p in ours}
        found += ours + [p for p in results.glob("cni-loopback-*") if p.name.split("-")[2] in sandboxes]
    socket = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
    if socket.exists():
        found.append(socket)
    found += [Path(p) for p in HOST_PATHS if Path(p).exists() and p not in before.get("paths", HOST_PATHS)]
    return found


def remove_host_files(before: dict) -> list[str]:
    removed = []
    for p in host_files(before):
        if p.is_dir() and not p.is_symlink():
            # Only empty folders go: a socket or file someone else put there since keeps its folder.
            for d, _, _ in sorted(os.walk(p), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            if not p.exists():
                removed.append(f"folder {p}")
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(f"file {p}")
    return removed
