"""Start detached processes, remember them by PID, stop them by PID, wait for readiness with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from . import config


class StackError(RuntimeError):
    """A service did not come up (or down); the message says which, why, and shows its log tail."""


def run_dir() -> Path:
    d = config.state("run")
    d.mkdir(parents=True, exist_ok=True)
    return d


def log_path(name: str) -> Path:
    d = config.state("logs")
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.log"


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def pid_alive(pid: int | None) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def read_pid(pidfile: Path, marker: str | None = None) -> int | None:
    """PID from a pid file, or None if that process is gone (or the PID now belongs to something else)."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if marker and marker not in cmdline(pid):
        return None
    return pid


def start(
    name: str,
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start `cmd` in its own session, output to logs/<name>.log, PID to run/<name>.pid."""
    log = log_path(name)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    (run_dir() / f"{name}.pid").write_text(f"{proc.pid}\n")
    # Every session this stack ever started: `leftovers` finds renamed children (setproctitle) by session.
    with open(run_dir() / "sessions", "a") as f:
        f.write(f"{proc.pid}\n")
    return proc.pid


def stop_pid(name: str, pid: int | None, *, timeout: float = 30.0) -> bool:
    """SIGTERM, wait at most `timeout`, then SIGKILL the one process `pid` (and its process group, which it leads)."""
    if not pid or not pid_alive(pid):
        return False
    try:
        process = psutil.Process(pid)
        process.terminate()
        if not wait_gone(pid, timeout):
            print(f"  {name}: pid {pid} ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
            process.kill()
            wait_gone(pid, timeout)  # a process stuck in the kernel stays; `status` reports it
    except psutil.NoSuchProcess:
        return False
    # Children that the service started in its own session (e.g. Airflow's task supervisors)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    """True once `pid` has exited, within `timeout`. An exited process counts as gone before it is reaped:
    the services outlive the `up` that started them, so their parent is whatever init the machine runs,
    and an init that reaps late (or never) must not hold up a stop (psutil's wait waits for the reaping)."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def port_open(port: int, host: str = config.HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    name: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    pid: int | None = None,
    log: Path | None = None,
    what: str = "ready",
) -> None:
    """Poll `check` until true; fail with the reason and the log tail on timeout or if `pid` dies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a probe error just means "not yet"
            pass
        if pid is not None and not pid_alive(pid):
            raise StackError(
                f"{name} exited before it was {what} (pid {pid}).\n"
                f"--- last lines of {log} ---\n{tail(log) if log else ''}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{name} was not {what} within {timeout:.0f}s.\n--- last lines of {log} ---\n{tail(log) if log else ''}"
            )
        time.sleep(0.5)


def leftovers(sessions_only: bool = False) -> list[tuple[int, str]]:
    """Processes still alive from a session this stack started (or, unless sessions_only, whose command
    line mentions the stack's state folder)."""
    needle = str(config.STATE)
    found = []
    me = os.getpid()
    try:
        sessions = {int(x) for x in (run_dir() / "sessions").read_text().split()}
    except FileNotFoundError:
        sessions = set()
    for process in psutil.process_iter(["cmdline"]):
        if process.pid == me:
            continue
        cmd = " ".join(process.info["cmdline"] or [])
        try:
            sid = os.getsid(process.pid)
        except (ProcessLookupError, PermissionError):
            sid = -1
        mentions = not sessions_only and needle in cmd
        if (sid in sessions or mentions) and pid_alive(process.pid):
            found.append((process.pid, cmd[:160]))
    return found


def reap_sessions() -> list[str]:
    """After every service is stopped: end stragglers of the stack's own sessions (task processes,
    spark-submit JVMs), by PID, then forget the sessions."""
    report = []
    for pid, text in leftovers(sessions_only=True):
        report.append(f"pid {pid}: {text}")
        stop_pid(f"straggler {pid}", pid, timeout=10)
    if not leftovers(sessions_only=True):
        (run_dir() / "sessions").unlink(missing_ok=True)
    return report
