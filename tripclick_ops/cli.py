"""The runbook's commands over the REST API (docs/operations.md).

    python -m tripclick_ops [connection] rerun-stage --date D --stage S [--wait]
    python -m tripclick_ops [connection] backfill --from D --to D [--max-active-runs N] [--reprocess ...] [--wait]
    python -m tripclick_ops [connection] pause | resume
    python -m tripclick_ops [connection] dag-ready | run --date D          (make kind-test)
    python -m tripclick_ops slack-check --date D < messages.json            (make kind-test)
    python -m tripclick_ops outcomes --date D --lake DIR --generated F --pg-dsn DSN

Connection: --url (production: `kubectl port-forward svc/<release>-api-server 8080:8080`, then
http://127.0.0.1:8080) with --user (Secret tripclick-admin's key username) and the password in --password-file
(a file holding only the Secret's key password) or in the environment variable AIRFLOW_PASSWORD; each option
defaults to its environment variable: AIRFLOW_URL, AIRFLOW_USER, AIRFLOW_PASSWORD_FILE. The local demo stack
is reached the same way: `eval "$(python -m demo.stack ops-env)"` sets those variables for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from tripclick_ops import outcomes
from tripclick_ops.api import DAG_ID, ApiError, Client, password_from_file

REPROCESS = ("none", "failed", "completed")


def day_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2020-09-01 (the event_date the run processes)"
        ) from None


def stage_arg(value: str) -> str:
    if value not in outcomes.STAGES:
        raise argparse.ArgumentTypeError(f"unknown stage {value!r}: choose one of {', '.join(outcomes.STAGES)}")
    return value


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give a whole number of runs, 1 or more")
    return int(value)


def connection_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value):
        return argparse.SUPPRESS if suppress else value

    p.add_argument(
        "--url", default=default(os.environ.get("AIRFLOW_URL") or "http://127.0.0.1:8080"), help="api-server URL"
    )
    p.add_argument("--user", default=default(os.environ.get("AIRFLOW_USER") or "tripclick-admin"))
    p.add_argument(
        "--password-file",
        default=default(os.environ.get("AIRFLOW_PASSWORD_FILE")),
        help="a file holding only the password; else the variable AIRFLOW_PASSWORD",
    )
    p.add_argument("--timeout", type=float, default=default(3600), help="seconds to wait (--wait, run, dag-ready)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tripclick_ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    connection_options(p, suppress=False)
    # The same options after the command too (`... dag-ready --url U`); there they override only when given.
    conn = argparse.ArgumentParser(add_help=False)
    connection_options(conn, suppress=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(parents=[conn], name="rerun-stage", help="run one stage of a day again, with what depends on it")
    s.add_argument("--date", type=day_arg, required=True, help="the day (event_date), YYYY-MM-DD")
    s.add_argument("--stage", type=stage_arg, required=True, help=f"one of {', '.join(outcomes.STAGES)}")
    s.add_argument("--wait", action="store_true", help="wait for the run to end; exit 1 unless it succeeded")

    b = sub.add_parser(
        parents=[conn], name="backfill", help="run the days FROM..TO (both included) through Airflow's backfill"
    )
    b.add_argument("--from", dest="first", type=day_arg, required=True, help="first day, YYYY-MM-DD")
    b.add_argument("--to", dest="last", type=day_arg, required=True, help="last day, YYYY-MM-DD")
    b.add_argument(
        "--max-active-runs", type=positive_int, default=1, help="days running at once (default 1, as the DAG)"
    )
    b.add_argument(
        "--reprocess",
        choices=REPROCESS,
        default="failed",
        help="days that already have a run: none = skip them, failed = rerun failed ones (default), completed = all",
    )
    b.add_argument("--wait", action="store_true", help="wait until every day ended; exit 1 unless all succeeded")

    sub.add_parser(parents=[conn], name="pause", help="stop the scheduler from starting runs (running tasks finish)")
    sub.add_parser(parents=[conn], name="resume", help="let the scheduler start runs again")
    sub.add_parser(parents=[conn], name="dag-ready", help="wait until the DAG is parsed; fail on an import error")
    r = sub.add_parser(parents=[conn], name="run", help="unpause, trigger a day, wait, check every task succeeded")
    r.add_argument("--date", type=day_arg, required=True)
    c = sub.add_parser(
        parents=[conn],
        name="slack-check",
        help="stdin: the Slack stand-in's messages; one all-success summary, no alert",
    )
    c.add_argument("--date", type=day_arg, required=True)
    o = sub.add_parser(
        parents=[conn], name="outcomes", help="silver, bronze and gold of a day against the generated data"
    )
    o.add_argument("--date", type=day_arg, required=True)
    o.add_argument("--lake", type=Path, required=True, help="the lake root as seen from this machine")
    o.add_argument("--generated", type=Path, required=True, help="the JSON summary `python -m demo.datagen` printed")
    o.add_argument("--pg-dsn", required=True, help="libpq DSN of the gold database (password from PGPASSWORD)")
    return p


def connect(args: argparse.Namespace) -> Client:
    if args.password_file:
        password = password_from_file(args.password_file)
    elif os.environ.get("AIRFLOW_PASSWORD"):
        password = os.environ["AIRFLOW_PASSWORD"]
    else:
        raise ApiError(
            f"no password for {args.user} at {args.url}: pass --password-file or set AIRFLOW_PASSWORD_FILE or "
            'AIRFLOW_PASSWORD (for the local demo stack: eval "$(python -m demo.stack ops-env)")'
        )
    return Client(args.url, args.user, password)


def print_tasks(tasks: list[dict]) -> None:
    for ti in sorted(tasks, key=lambda t: t["task_id"]):
        print(f"  {ti['task_id']:<34} {ti['state']!s:<16} try {ti['try_number']}")


def finish(client: Client, run_id: str, timeout: float) -> int:
    run = client.watch(run_id, timeout=timeout, poll=10)
    tasks = client.tasks(run_id)
    print_tasks(tasks)
    problems = outcomes.task_problems(run["state"], tasks)
    for ti in tasks:
        if ti["state"] == "failed":
            print(f"----- log of {ti['task_id']} try {ti['try_number']} -----", file=sys.stderr)
            print("\n".join(client.log_lines(run_id, ti["task_id"], ti["try_number"])[-60:]), file=sys.stderr)
    if problems:
        print(f"run {run_id}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"run {run_id}: success, {len(tasks)} tasks as a good day leaves them")
    return 0


def rerun_stage(client: Client, args: argparse.Namespace) -> int:
    run_id = client.clear_stage(args.date, args.stage)
    print(
        f"cleared {args.stage} and what depends on it in run {run_id} ({args.date}); the other tasks keep their tries"
    )
    return finish(client, run_id, args.timeout) if args.wait else 0


def backfill(client: Client, args: argparse.Namespace) -> int:
    created = client.backfill(args.first, args.last, args.max_active_runs, args.reprocess)
    print(
        f"backfill {created['id']}: {args.first}..{args.last}, at most {created['max_active_runs']} at once, "
        f"reprocess {args.reprocess}"
    )
    if not args.wait:
        return 0
    client.wait_backfill(created["id"], args.timeout)
    bad = 0
    day = args.first
    while day <= args.last:
        run = client.run_for_date(day)
        state = run["state"] if run else "no run"
        print(f"  {day}: {state}" + (f" ({run['dag_run_id']})" if run else ""))
        bad += state != "success"
        day = date.fromordinal(day.toordinal() + 1)
    return 1 if bad else 0


def kind_run(client: Client, args: argparse.Namespace) -> int:
    client.set_paused(False)
    run_id = client.trigger(args.date, prefix="kind_test")
    print(f"triggered {DAG_ID} run {run_id}")
    return finish(client, run_id, args.timeout)


def slack_check(args: argparse.Namespace) -> int:
    texts = outcomes.slack_texts(json.load(sys.stdin))
    problems = outcomes.slack_problems(texts, args.date.isoformat())
    if problems:
        print(f"Slack receiver: {'; '.join(problems)}; messages: {texts}", file=sys.stderr)
        return 1
    print(f"Slack receiver: one summary for {args.date}, every stage a success, no alert")
    return 0


def check_outcomes(args: argparse.Namespace) -> int:
    import psycopg2

    day = args.date.isoformat()
    generated = json.loads(args.generated.read_text())
    silver, bronze = outcomes.read_layer(args.lake, "silver", day), outcomes.read_layer(args.lake, "bronze", day)
    with psycopg2.connect(args.pg_dsn, connect_timeout=15) as conn:
        marts = outcomes.read_marts(conn, day)
    problems = outcomes.day_problems(day, generated, silver, bronze, marts)
    if problems:
        print("outcomes: " + "\n  ".join(["FAILED", *problems]), file=sys.stderr)
        return 1
    print(f"outcomes: silver {len(silver)} rows (deduplicated), bronze {len(bronze)} rows, "
          f"gold marts consistent with silver for {day}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "slack-check":
            return slack_check(args)
        if args.command == "outcomes":
            return check_outcomes(args)
        if args.command == "backfill" and args.first > args.last:
            raise ApiError(f"--from {args.first} is after --to {args.last}: swap them")
        client = connect(args)
        if args.command == "pause":
            client.set_paused(True)
            print(f"{DAG_ID} paused: no new run starts; running tasks finish (resume: make resume)")
            return 0
        if args.command == "resume":
            client.set_paused(False)
            print(f"{DAG_ID} resumed: the scheduler starts due runs again")
            return 0
        if args.command == "dag-ready":
            dag = client.wait_dag(timeout=min(args.timeout, 300))
            print(f"{DAG_ID} parsed (is_paused={dag['is_paused']}); no import errors")
            return 0
        client.wait_dag()
        if args.command == "rerun-stage":
            return rerun_stage(client, args)
        if args.command == "backfill":
            return backfill(client, args)
        return kind_run(client, args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
