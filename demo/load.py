"""Concurrent REST clients against the local stack's api-server, as scripts and dashboards load it.

    python -m demo.load [--clients 20] [--seconds 120]

Each client is a thread with its own login (a bearer token) that lists the DAG's runs
(GET /api/v2/dags/<dag>/dagRuns?limit=50) in a loop; a prober asks the health endpoint once every
10 s meanwhile. Prints requests, req/s, p50/p95/max latency, errors and the health probes answered;
asserts nothing (tests/e2e/test_api_load.py holds the correctness side). The stack must be up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from demo import api
from demo.stack import airflow as stack_airflow
from demo.stack import config
from demo.stack.proc import StackError
from demo.stack.services import http_get

PAGE = {"limit": 50}
# A request still waiting after this long counts as an error; it bounds the test, it is not a target.
REQUEST_TIMEOUT = 120.0
HEALTH_EVERY = 10.0
# A probe during the load counts as unanswered after this long (a figure, not a verdict).
HEALTH_TIMEOUT = 5.0
# The checks after a burst wait longer: the execution API's app is built on its first request, which
# takes seconds on this machine.
CHECK_TIMEOUT = 60.0


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    login_seconds: float = 0.0
    requests_from: float = 0.0
    health_asked: int = 0
    health_answered: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> str:
        n = len(self.latencies) + len(self.errors)
        return (
            f"logins {self.login_seconds:.1f} s, then {n} requests in {self.seconds:.0f} s "
            f"({n / self.seconds:.1f} req/s), "
            f"p50 {statistics.median(self.latencies) * 1000:.0f} ms, p95 {self.percentile(0.95) * 1000:.0f} ms, "
            f"max {max(self.latencies):.1f} s, errors {len(self.errors)}, "
            f"health answered {self.health_answered}/{self.health_asked}"
        )


def health_ok(timeout: float = HEALTH_TIMEOUT) -> bool:
    """The api-server's health endpoint answers and finds the metadata database healthy."""
    try:
        return stack_airflow.health(timeout)["metadatabase"]["status"] == "healthy"
    except (OSError, StackError, KeyError):
        return False


def execution_api_ok(timeout: float = CHECK_TIMEOUT) -> bool:
    """The execution API, which every task calls for its state, heartbeats and token renewals, answers."""
    try:
        code, _ = http_get(f"{config.airflow_url()}/execution/health", timeout=timeout)
    except OSError:
        return False
    return code == 200


def _client(result: Result, lock: threading.Lock, logged_in: threading.Barrier, more: Callable[[int], bool]) -> None:
    client = None
    try:
        client = api.Client(
            config.airflow_url(),
            config.ADMIN_USER,
            config.load_secrets()["admin_password"],
            config.DAG_ID,
            timeout=REQUEST_TIMEOUT,
        )
    except Exception as exc:  # noqa: BLE001 - a failed login is one error of the run, whatever raised it
        with lock:
            result.errors.append(f"login: {exc}")
    # Every client logs in before any sends a request: a login checks the password hash (FAB: scrypt,
    # 32 MiB of memory each), a cost of its own that the figures keep apart from the requests'.
    logged_in.wait()
    if client is None:
        return
    done = 0
    while more(done):
        t0 = time.monotonic()
        try:
            client.call("GET", f"/dags/{config.DAG_ID}/dagRuns", params=PAGE)
        except Exception as exc:  # noqa: BLE001 - HTTP errors and socket timeouts alike
            with lock:
                result.errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        else:
            with lock:
                result.latencies.append(time.monotonic() - t0)
        done += 1


def run(clients: int, *, requests: int | None = None, seconds: float | None = None) -> Result:
    """`clients` threads log in together, then each sends `requests` requests, or sends for `seconds`;
    health probed meanwhile. `Result.requests_from` is when the requests began (time.monotonic)."""
    result, lock, stop = Result(), threading.Lock(), threading.Event()
    t0 = time.monotonic()

    def start_requests() -> None:
        # Runs once, before any thread leaves the barrier.
        result.requests_from = time.monotonic()
        result.login_seconds = result.requests_from - t0

    logged_in = threading.Barrier(clients + 1, action=start_requests, timeout=REQUEST_TIMEOUT + 10)

    def more(done: int) -> bool:
        return done < requests if requests is not None else time.monotonic() - result.requests_from < seconds

    def probe() -> None:
        while not stop.wait(HEALTH_EVERY):
            result.health_asked += 1
            result.health_answered += health_ok()

    threads = [
        threading.Thread(target=_client, args=(result, lock, logged_in, more), daemon=True) for _ in range(clients)
    ]
    for t in threads:
        t.start()
    logged_in.wait()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - result.requests_from
    stop.set()
    prober.join()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m demo.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args(argv)
    api.airflow().wait_dag()
    result = run(args.clients, seconds=args.seconds)
    print(f"{args.clients} clients: {result.summary()}")
    for error in sorted(set(result.errors))[:5]:
        print(f"  error: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
