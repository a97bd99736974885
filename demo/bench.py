"""`make bench-e2e`: orchestration overhead and control-plane memory over real runs on the local stack.

    python -m demo.bench [--runs 3]

For each run (a different past date, triggered over the REST API):
  wall      the DAG run's start to end (Airflow's own timestamps)
  payload   the work itself: each producer container's start->die (Docker events of its daemon) plus each Spark
            application's run time as the Spark master records it
  critical  the payload on the critical path: max(producers, streaming) + bronze + gold
  overhead  wall - critical, also per task (scheduling, task start-up, parsing, spark-submit JVM start, waits)
  memory    RSS and PSS of the four Airflow components (api-server, scheduler with its idle LocalExecutor
            workers, dag-processor, triggerer), sampled every 2 s while the run is in flight; task
            processes (task runners, spark-submit drivers) are not control plane and are left out.
Prints per-run figures and medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import date, timedelta

import psutil

from demo import api, footprint
from demo.datagen.generate import generate_day, write_day
from demo.stack import config
from demo.stack.services import DockerDaemon, http_get

FIRST_DAY = date(2020, 7, 1)


def _mem_kb(pid: int) -> tuple[int, int]:
    """Resident and proportional set size in KiB (PSS shares pages mapped by several processes fairly)."""
    try:
        mem = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0, 0
    return mem.rss // 1024, mem.pss // 1024


def control_plane_pids() -> list[int]:
    """The four components' Airflow processes and their descendants, LocalExecutor task processes excepted
    (demo/footprint.py), not their supervisors."""
    kids = footprint.children()
    return [pid for root in footprint.roots().values() for pid in footprint.tree(root, kids)]


def sample_memory(stop: threading.Event, out: list[tuple[int, int]]) -> None:
    while not stop.is_set():
        rss = pss = 0
        for pid in control_plane_pids():
            r, p = _mem_kb(pid)
            rss, pss = rss + r, pss + p
        out.append((rss, pss))
        stop.wait(2)


def container_times(server: str, day: str, since: float, until: float) -> list[float]:
    client = DockerDaemon(server).client()
    try:
        events = client.events(since=int(since), until=int(until) + 1, decode=True, filters={"type": "container"})
        starts, spans = {}, []
        for e in events:
            attrs = e.get("Actor", {}).get("Attributes") or {}
            if attrs.get("org.tripclick.event-date") != day:
                continue
            cid, action, t = e.get("id"), e.get("Action") or e.get("status"), e["timeNano"] / 1e9
            if action == "start":
                starts[cid] = t
            elif action == "die" and cid in starts:
                spans.append(t - starts.pop(cid))
        return spans
    finally:
        client.close()


def spark_app_times(day: str) -> dict[str, float]:
    code, body = http_get(f"http://{config.HOST}:{config.PORTS['spark_master_ui']}/json/")
    apps = json.loads(body).get("completedapps", []) if code == 200 else []
    out = {}
    for app in apps:
        for job in ("streaming_to_silver", "batch_to_bronze", "etl_to_gold"):
            if app.get("name") == f"tripclick-{job}-{day}":
                out[job] = max(out.get(job, 0.0), app.get("duration", 0) / 1000)
    return out


def one_run(af: api.Client, day: date, events: int) -> dict:
    write_day(day, generate_day(day, events, seed=7), config.state("servers"))
    samples: list[tuple[int, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(stop, samples), daemon=True)
    t0 = time.time()
    sampler.start()
    run_id = af.trigger(day)
    try:
        run = af.watch(run_id, timeout=1800)
    finally:
        stop.set()
        sampler.join()
    if run["state"] != "success":
        raise SystemExit(f"bench: run {run_id} ended {run['state']}; see `python -m demo.run` for the failing task")
    tis = af.tasks(run_id)
    start, end = api.parse_time(run["start_date"]), api.parse_time(run["end_date"])
    wall = (end - start).total_seconds()
    producers = [
        s for server in config.DOCKER_SERVERS for s in container_times(server, day.isoformat(), t0, time.time())
    ]
    spark = spark_app_times(day.isoformat())
    payload = sum(producers) + sum(spark.values())
    critical = (
        max([*producers, spark.get("streaming_to_silver", 0.0)])
        + spark.get("batch_to_bronze", 0.0)
        + spark.get("etl_to_gold", 0.0)
    )
    return {
        "day": day.isoformat(),
        "wall": wall,
        "payload": payload,
        "critical": critical,
        "tasks": len(tis),
        "producers": producers,
        "spark": spark,
        "rss_mb": [r / 1024 for r, _ in samples],
        "pss_mb": [p / 1024 for _, p in samples],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m demo.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=4000)
    args = ap.parse_args(argv)
    af = api.stack_ready()
    results = []
    for i in range(args.runs):
        res = one_run(af, FIRST_DAY + timedelta(days=i), args.events)
        results.append(res)
        over = res["wall"] - res["critical"]
        print(
            f"run {i + 1}/{args.runs} {res['day']}: wall {res['wall']:.1f}s, payload {res['payload']:.1f}s "
            f"(containers {', '.join(f'{p:.1f}' for p in res['producers'])}; spark "
            + ", ".join(f"{k} {v:.1f}" for k, v in res["spark"].items())
            + f"), critical path {res['critical']:.1f}s, overhead {over:.1f}s over {res['tasks']} tasks; "
            f"control plane RSS median {statistics.median(res['rss_mb']):.0f} MB "
            f"(max {max(res['rss_mb']):.0f}), PSS median {statistics.median(res['pss_mb']):.0f} MB",
            flush=True,
        )

    def med(key):
        return statistics.median(key(r) for r in results)

    wall, payload, critical = med(lambda r: r["wall"]), med(lambda r: r["payload"]), med(lambda r: r["critical"])
    tasks = med(lambda r: r["tasks"])
    print(f"\n== orchestration overhead (median of {len(results)} runs, {args.events} events/day) ==")
    print(f"DAG run wall time              {wall:8.1f} s")
    print(f"sum of payload times           {payload:8.1f} s   (wall / payload = {wall / payload:.2f})")
    print(f"payload on the critical path   {critical:8.1f} s   (wall / critical = {wall / critical:.2f})")
    print(
        f"overhead (wall - critical)     {wall - critical:8.1f} s   "
        f"= {(wall - critical) / tasks:.1f} s per task ({tasks:.0f} tasks)"
    )
    print("== control-plane memory while a run is in flight (api-server, scheduler, dag-processor, triggerer) ==")
    print(
        f"RSS median {med(lambda r: statistics.median(r['rss_mb'])):.0f} MB, "
        f"max {max(max(r['rss_mb']) for r in results):.0f} MB"
    )
    print(
        f"PSS median {med(lambda r: statistics.median(r['pss_mb'])):.0f} MB "
        "(shared pages of forked workers counted once)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
