"""The cluster's host processes: started detached with a PID file and a log each, stopped by that PID only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from . import settings


class ClusterError(RuntimeError):
    """Something did not come up or go down; the message says what and where its log is."""


def log_path(name: str) -> Path:
    d = settings.state("logs")
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.log"


def pid_file(name: str) -> Path:
    return settings.state("run", f"{name}.pid")


def tail(name: str, lines: int = 25) -> str:
    try:
        return "\n".join(log_path(name).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def running(name: str) -> int | None:
    """The PID in run/<name>.pid if that process still runs the program it was started as (PIDs are reused)."""
    try:
        pid_text, program = pid_file(name).read_text().split()[:2]
        p = psutil.Process(int(pid_text))
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        exe = Path(p.cmdline()[0]).name
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return p.pid if exe == program else None


def start(name: str, cmd: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start `cmd` in its own session; output appends to logs/<name>.log, the PID goes to run/<name>.pid."""
    pid = running(name)
    if pid:
        return pid
    log = log_path(name)
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PATH": f"{settings.BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    pid_file(name).write_text(f"{proc.pid} {Path(cmd[0]).name}\n")
    # Until the child has exec'd, its command line is still ours and `running` would not recognise it.
    deadline = time.monotonic() + 5
    while proc.poll() is None and not running(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.pid


def stop(name: str, timeout: float = 20.0) -> bool:
    """SIGTERM the process of run/<name>.pid, SIGKILL it after `timeout`; True if one was running."""
    pid = running(name)
    pid_file(name).unlink(missing_ok=True)
    if not pid:
        return False
    p = psutil.Process(pid)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except psutil.TimeoutExpired:
        p.kill()
        p.wait(10)
    return True


def wait_for(what: str, check: Callable[[], bool], timeout: float, name: str | None = None) -> float:
    """Poll `check` until it is true; seconds it took. On timeout (or if `name`'s process died) raise with its log."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - a probe that fails is a probe that is not ready yet
            pass
        if name and not running(name):
            raise ClusterError(f"{name} exited while waiting for {what}; last lines of {log_path(name)}:\n{tail(name)}")
        if time.monotonic() - start > timeout:
            log = f"; last lines of {log_path(name)}:\n{tail(name)}" if name else ""
            raise ClusterError(f"{what}: not ready after {timeout:.0f} s{log}")
        time.sleep(0.5)
