"""`make demo`: generate a day, trigger tripclick_daily_pipeline for it over the REST API, watch, summarise.

    python -m demo.run [--date 2020-10-01] [--events 4000] [--timeout 1200]

Expects the stack to be up (`python -m demo.stack up`). Exits non-zero if the run fails, after printing
the failing task's log tail.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime

from demo import api
from demo.datagen.generate import generate_day, write_day
from demo.stack import config

DEFAULT_DATE = "2020-10-01"  # a day of the real log's last month; any past date works


def stamp() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def duration(ti: dict) -> str:
    start, end = api.parse_time(ti.get("start_date")), api.parse_time(ti.get("end_date"))
    return f"{(end - start).total_seconds():6.1f}s" if start and end else "      -"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m demo.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--date", default=DEFAULT_DATE, help="event_date to process (YYYY-MM-DD, in the past)")
    ap.add_argument("--events", type=int, default=4000, help="events in the generated day (both servers)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds to wait for the run")
    args = ap.parse_args(argv)
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"--date {args.date!r}: expected YYYY-MM-DD", file=sys.stderr)
        return 2
    if day >= datetime.now(UTC).date():
        print(
            f"--date {day}: pick a past date (the run's 17:00/18:00 UTC waits would otherwise really wait)",
            file=sys.stderr,
        )
        return 2

    t0 = time.time()
    summary = write_day(day, generate_day(day, args.events, seed=7), config.state("servers"))
    print(
        f"{stamp()} data: {summary['events']} events for {day} ({summary['distinct_dedup_keys']} distinct "
        f"dedup_keys), " + ", ".join(f"{k} {v['events']}" for k, v in summary["servers"].items())
    )

    af = api.airflow()
    af.wait_dag()
    existing = af.run_for_date(day)
    run_id = af.trigger(day)
    how = "cleared its existing run (one run per date), so it runs again" if existing else "triggered run"
    print(f"{stamp()} {config.DAG_ID} {day}: {how} {run_id} over the REST API")

    def on_change(task_id: str, state: str | None, ti: dict) -> None:
        if state:
            print(f"{stamp()}   {task_id:<34} {state}", flush=True)

    run = af.watch(run_id, timeout=args.timeout, on_change=on_change)
    wall = time.time() - t0
    tis = sorted(af.tasks(run_id), key=lambda t: t.get("start_date") or "9")
    print(f"\n=== {config.DAG_ID} {day}: run {run['state'].upper()} ===")
    print(f"{'task':<34} {'state':<16} {'duration':>8}  tries")
    for ti in tis:
        print(f"{ti['task_id']:<34} {str(ti['state']):<16} {duration(ti):>8}  {ti.get('try_number')}")
    try:
        rows = api.mart_rows(day.isoformat())
        print("\ngold marts (rows for this date): " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    except Exception as exc:  # noqa: BLE001 - the summary still prints the rest
        print(f"\ngold marts: cannot read ({exc})")
    messages = api.slack_messages(since=t0)
    print(f"\nSlack messages received ({len(messages)}):")
    for m in messages:
        text = m["payload"].get("text") or str(m["payload"].get("blocks"))
        print("  " + text.replace("\n", "\n  "))
    s = config.load_secrets()
    print(
        f"\nAirflow UI: {config.airflow_url()}/dags/{config.DAG_ID}  user {config.ADMIN_USER}  "
        f"password {s['admin_password']}"
    )
    print(f"demo wall time: {wall:.0f}s (data generation, trigger, run)")
    if run["state"] != "success":
        for ti in tis:
            if ti["state"] == "failed":
                print(f"\n--- {ti['task_id']}: last lines of its log ---")
                print("\n".join(af.log_lines(run_id, ti["task_id"])[-40:]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
