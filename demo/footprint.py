"""What each Airflow component of the local stack costs: CPU over a window and memory, by process tree.

A component is its root process and every descendant, except what a LocalExecutor worker forks to run a
task (not control plane; production runs tasks in pods of their own). CPU is the share of one core the tree
used over the window (user + system, processes that ended meanwhile included through their parent);
memory is RSS and PSS (PSS shares pages of forked workers fairly, so the sum over processes is meaningful).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

from demo.stack import airflow as stack_airflow
from demo.stack import proc, values


@dataclass
class Usage:
    cpu_pct: float
    rss_mib: float
    pss_mib: float


def children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        kids.setdefault(process.info["ppid"], []).append(process.pid)
    return kids


def tree(root: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    kids = children() if kids is None else kids
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        # A LocalExecutor worker belongs to the scheduler; what it forks to run a task does not.
        if "LocalExecutor" not in proc.cmdline(pid):
            stack.extend(kids.get(pid, []))
    return pids


def roots() -> dict[str, int]:
    """Each component's Airflow process: the one child of its supervisor (demo/stack/supervise.py), which
    stands for the kubelet and is not counted."""
    found = {}
    for component in stack_airflow.components():
        pid = component.pid()
        supervised = psutil.Process(pid).children() if pid else []
        if supervised:
            found[component.component] = supervised[0].pid
    return found


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Per process: its own CPU time plus that of its children it has reaped."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[pid] = t.user + t.system + t.children_user + t.children_system
    return out


def memory_mib(pids: list[int]) -> tuple[float, float]:
    rss = pss = 0
    for pid in pids:
        try:
            mem = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss, pss = rss + mem.rss, pss + mem.pss
    return rss / 2**20, pss / 2**20


def window(seconds: float) -> dict[str, Usage]:
    """CPU share of one core per component over `seconds`, and its memory at the end."""
    start_roots = roots()
    kids = children()
    before = {name: _cpu_seconds(tree(pid, kids)) for name, pid in start_roots.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    kids = children()
    out = {}
    for name, pid in start_roots.items():
        pids = tree(pid, kids)
        after = _cpu_seconds(pids)
        # A process gone by the end was reaped by a process of the tree, which now counts its time.
        used = sum(after[p] - before[name].get(p, 0.0) for p in after)
        rss, pss = memory_mib(pids)
        out[name] = Usage(100 * used / elapsed, rss, pss)
    return out


def api_server_memory_limit_mib() -> float:
    """The api-server's memory limit in production (values/base.yaml), in MiB."""
    text = str(values.airflow_values()["apiServer"]["resources"]["limits"]["memory"])
    factor = {"Mi": 1, "Gi": 1024}[text[-2:]]
    return float(text[:-2]) * factor


class PeakPss:
    """One component's tree PSS, sampled every half second while the block runs."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), PSS MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            root = roots().get(self.component)
            if root:
                self.samples.append((time.monotonic(), memory_mib(tree(root))[1]))
            self._stop.wait(0.5)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((pss for t, pss in self.samples if since <= t < until), default=0.0)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
