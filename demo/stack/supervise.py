"""Keep one command running, as the kubelet keeps an Airflow component's container (restartPolicy: Always).

Airflow's scheduler and triggerer exit when a query fails because the metadata database went away (a
restart, a failover); on Kubernetes the kubelet starts them again and the day goes on. The local stack runs
each Airflow component under this supervisor, so it recovers the same way:

    python -m demo.stack.supervise <name> -- <command> [args...]

A command that exits is started again after a pause that doubles from 10 s to 5 min and starts over once it
has run for 10 min (the kubelet's CrashLoopBackOff). SIGTERM or SIGINT is passed on to the command, which
gets STOP_GRACE_S to exit before it is killed; then the supervisor exits too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

FIRST_PAUSE_S = 10.0
MAX_PAUSE_S = 300.0
STABLE_AFTER_S = 600.0
STOP_GRACE_S = 25.0


def log(name: str, message: str) -> None:
    print(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} supervise {name}: {message}", flush=True)


def supervise(name: str, cmd: list[str]) -> int:
    stopping = threading.Event()
    child: subprocess.Popen | None = None

    def stop(signum, _frame) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pause, restarts = FIRST_PAUSE_S, 0
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(cmd)
        while child.poll() is None:
            if stopping.wait(0.5):
                try:
                    return child.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log(name, f"pid {child.pid} still running {STOP_GRACE_S:.0f}s after the stop signal; killing it")
                    child.kill()
                    return child.wait()
        if stopping.is_set():
            break
        if time.monotonic() - started > STABLE_AFTER_S:
            pause = FIRST_PAUSE_S
        restarts += 1
        log(name, f"pid {child.pid} exited with code {child.returncode}; restart {restarts} in {pause:.0f}s")
        stopping.wait(pause)
        pause = min(pause * 2, MAX_PAUSE_S)
    return child.returncode if child is not None and child.returncode is not None else 0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m demo.stack.supervise <name> -- <command> [args...]", file=sys.stderr)
        return 2
    return supervise(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
