"""`make bench-footprint`: what the control plane costs idle and what the api-server does under load.

    python -m demo.bench_footprint [--idle-seconds 300] [--load-seconds 120] [--clients 20]

1. idle: the local stack up, the DAG parsed, no run; per component the share of one core over the
   window and RSS/PSS at its end (demo/footprint.py).
2. load: `--clients` REST clients log in together, then send requests for `--load-seconds`
   (demo/load.py): requests, req/s, p50/p95/max, errors, health probes answered, and the api-server's
   peak PSS during the logins and during the requests next to its production memory limit
   (values/base.yaml).
The orchestration overhead per task of real runs is `make bench-e2e` (demo/bench.py). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

from demo import api, footprint, load

SETTLE_SECONDS = 30  # after `up` the dag-processor parses the DAG folder once: not idle yet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m demo.bench_footprint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--idle-seconds", type=float, default=300)
    ap.add_argument("--load-seconds", type=float, default=120)
    ap.add_argument("--clients", type=int, default=20)
    args = ap.parse_args(argv)
    api.stack_ready()
    time.sleep(SETTLE_SECONDS)

    idle = footprint.window(args.idle_seconds)
    print(f"\n== idle control plane over {args.idle_seconds:.0f} s, no run ==")
    print(f"{'component':15} {'cpu % of 1 core':>16} {'RSS MiB':>9} {'PSS MiB':>9}")
    for name, u in idle.items():
        print(f"{name:15} {u.cpu_pct:16.1f} {u.rss_mib:9.0f} {u.pss_mib:9.0f}")
    print(
        f"{'total':15} {sum(u.cpu_pct for u in idle.values()):16.1f} "
        f"{sum(u.rss_mib for u in idle.values()):9.0f} {sum(u.pss_mib for u in idle.values()):9.0f}"
    )

    with footprint.PeakPss("api-server") as peak:
        result = load.run(args.clients, seconds=args.load_seconds)
    print(f"\n== {args.clients} REST clients for {args.load_seconds:.0f} s (GET dagRuns?limit=50) ==")
    print(result.summary())
    for error in sorted(set(result.errors))[:5]:
        print(f"  error: {error}")
    print(
        f"api-server peak PSS: {peak.peak(until=result.requests_from):.0f} MiB while the {args.clients} clients "
        f"logged in together (a password check holds 32 MiB), {peak.peak(since=result.requests_from):.0f} MiB "
        f"while they sent requests; production memory limit {footprint.api_server_memory_limit_mib():.0f} MiB "
        "(values/base.yaml)"
    )
    print("\norchestration overhead per task over real runs: `make bench-e2e`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
