"""cluster-down: stop every process cluster-up started, kill the pods' containers, unmount, and take back each
change made to the host's network and sysctls; print what was removed, then what (if anything) is left."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time

import psutil

from . import components, host, proc, settings

# Kept across cluster-down: the built binaries and images (rebuilding them costs minutes), and the logs.
KEEP = ("bin", "images", "logs")


def _kill_pods() -> list[str]:
    """Kill every container task in containerd's k8s.io namespace, then any process left in a pod cgroup."""
    removed = []
    if proc.running("containerd"):
        ctr = components.ctr()
        r = subprocess.run([*ctr, "-n", "k8s.io", "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30)
        tasks = r.stdout.split()
        for task in tasks:
            subprocess.run([*ctr, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", task], capture_output=True)
        deadline = time.monotonic() + 20
        for task in tasks:
            while time.monotonic() < deadline:
                d = subprocess.run([*ctr, "-n", "k8s.io", "tasks", "delete", task], capture_output=True, text=True)
                if d.returncode == 0 or "not found" in d.stderr:
                    break
                time.sleep(0.5)
        if tasks:
            removed.append(f"{len(tasks)} container tasks")
    stray = host.pod_processes()
    for pid in stray:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    if stray:
        removed.append(f"{len(stray)} processes left in pod cgroups")
    return removed


def _shims() -> list[psutil.Process]:
    shim = str(settings.BIN / "containerd-shim-runc-v2")
    found = []
    for p in psutil.process_iter(["exe", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.info["exe"] == shim or (p.info["cmdline"] and p.info["cmdline"][0] == shim):
                found.append(p)
    return found


def _stop_shims() -> list[str]:
    shims = _shims()
    for p in shims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(shims, timeout=10)
    return [f"{len(shims)} containerd shims"] if shims else []


def leftovers() -> list[str]:
    """What of the cluster is still on the host: processes, mounts, interfaces, routes, chains, ipsets."""
    left = []
    for c in components.COMPONENTS:
        if proc.running(c.name):
            left.append(f"process {c.name}")
    if proc.running("dockerd"):
        left.append("process dockerd")
    left += [f"process containerd-shim pid {p.pid}" for p in _shims()]
    left += [f"pod process {pid}" for pid in host.pod_processes()]
    left += [f"mount {m}" for m in host.mounts_under(settings.STATE)]
    if host.run("ip", "link", "show", settings.BRIDGE, check=False).returncode == 0:
        left.append(f"interface {settings.BRIDGE}")
    routes = host.run("ip", "route", "show", "type", "unreachable", check=False).stdout
    left += [f"route unreachable {c}" for c in (settings.POD_CIDR, settings.SERVICE_CIDR) if c in routes]
    before = _before()
    for binary in ("iptables", "ip6tables"):
        for table, names in host.chains(binary).items():
            old = before.get("chains", {}).get(binary, {}).get(table, [])
            left += [
                f"{binary} {table} chain {n}" for n in names if n.startswith(settings.CHAIN_PREFIXES) and n not in old
            ]
    left += [f"rule {r}" for r in host.rules_of_ours() if r not in before.get("rules", [])]
    left += [
        f"ipset {n}"
        for n in host.ipsets()
        if n.startswith(settings.IPSET_PREFIXES) and n not in before.get("ipsets", [])
    ]
    left += [f"cgroup {d}" for d in host.cgroup_dirs()]
    left += [f"host file {p}" for p in host.host_files(before)] if before else []
    return left


def _before() -> dict:
    try:
        return json.loads(host.before_path().read_text())
    except FileNotFoundError:
        return {}


def down() -> int:
    t0 = time.monotonic()
    before = _before()
    removed: list[str] = []
    # Policy and Service rules first (each program removes its own), then the node, then the control plane.
    for name, cleanup in (("kube-router", "--cleanup-config"), ("kube-proxy", "--cleanup")):
        if proc.stop(name):
            removed.append(f"process {name}")
        if before and (settings.BIN / name).exists():
            subprocess.run([str(settings.BIN / name), cleanup], capture_output=True, timeout=60)
    if proc.stop("kubelet"):
        removed.append("process kubelet")
    removed += _kill_pods()
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "containerd", "dockerd"):
        if proc.stop(name):
            removed.append(f"process {name}")
    removed += _stop_shims()
    removed += host.unmount_all(settings.STATE)
    removed += host.remove_cgroups()
    if before:
        removed += host.remove_chains(before)
        removed += host.remove_ipsets(before)
        removed += host.remove_network()
        removed += host.restore_sysctls(before)
        removed += host.remove_host_files(before)
    for line in removed:
        print(f"  removed {line}")
    left = leftovers()
    if left:
        # The state stays, with the record of the host before cluster-up, so that another cluster-down can retry.
        print("cluster-down left these behind:")
        for line in left:
            print(f"  - {line}")
        return 1
    for entry in settings.STATE.iterdir() if settings.STATE.exists() else ():
        if entry.name not in KEEP:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    print(f"cluster down in {time.monotonic() - t0:.0f} s; nothing of it is left on the host")
    return 0
