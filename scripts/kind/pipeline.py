#!/usr/bin/env python3
"""The REST side of `make kind-test`: talk to the api-server through kubectl port-forward.

    pipeline.py dag-ready   --url URL --password-file F        no import errors, DAG parsed
    pipeline.py run         --url URL --password-file F --date YYYY-MM-DD [--timeout S]
    pipeline.py slack-check --date YYYY-MM-DD  < messages.json  one summary, all stages success, no alert
    pipeline.py outcomes --date D --lake DIR --generated F --pg-dsn DSN   silver, bronze and gold as the local e2e

`run` unpauses tripclick_daily_pipeline, triggers it for the date (logical date = 15:00 UTC that day, the
scheduled time), polls until the run ends, prints every task's state, and on failure prints the log of
each failed task. Exit status 0 only if the run and every task succeeded.
dag-ready, run and slack-check use the standard library only; outcomes needs pyarrow and psycopg2
(the project venv has both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

DAG_ID = "tripclick_daily_pipeline"
USER = "tripclick-admin"
FINISHED = {"success", "failed"}


class Api:
    def __init__(self, url: str, password_file: str) -> None:
        self.url = url.rstrip("/")
        passwords = json.loads(Path(password_file).read_text())
        self.token = self._token(passwords[USER])

    def _token(self, password: str) -> str:
        body = json.dumps({"username": USER, "password": password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None


def dag_ready(api: Api, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        errors = api.call("GET", "/importErrors")
        if errors["total_entries"]:
            for item in errors["import_errors"]:
                print(f"IMPORT ERROR in {item['filename']}:\n{item['stack_trace']}", file=sys.stderr)
            return 1
        try:
            dag = api.call("GET", f"/dags/{DAG_ID}")
            print(f"{DAG_ID} parsed (is_paused={dag['is_paused']}); no import errors")
            return 0
        except SystemExit as missing:
            if time.monotonic() > deadline:
                print(f"{DAG_ID} not parsed after {timeout:.0f} s: {missing}", file=sys.stderr)
                return 1
        time.sleep(5)


def run(api: Api, day: date, timeout: float) -> int:
    api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    run_id = f"kind_test__{day.isoformat()}__{int(time.time())}"
    api.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": run_id, "logical_date": f"{day.isoformat()}T15:00:00Z", "conf": {}},
    )
    print(f"triggered {DAG_ID} run {run_id}")
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in FINISHED:
            break
        time.sleep(10)
    tis = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    for ti in sorted(tis, key=lambda t: t["task_id"]):
        print(f"  {ti['task_id']:<24} {ti['state']}")
    failed = [ti for ti in tis if ti["state"] != "success"]
    if state != "success" or failed:
        print(f"run {run_id} ended {state!r} (timeout {timeout:.0f} s)", file=sys.stderr)
        for ti in failed:
            if not ti.get("try_number"):
                continue
            path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
            log = api.call("GET", f"{path}?full_content=true")
            print(f"----- task log: {ti['task_id']} try {ti['try_number']} -----", file=sys.stderr)
            for line in log.get("content", []):
                print(line.get("event", line) if isinstance(line, dict) else line, file=sys.stderr)
        return 1
    print(f"run {run_id}: success, {len(tis)} tasks succeeded")
    return 0


STAGES = ("preflight", "producer_server0", "producer_server1", "streaming_to_silver", "batch_to_bronze", "etl_to_gold")
MARTS = ("mart_session_analysis", "mart_daily_traffic", "mart_clinical_areas", "mart_popular_documents")


def slack_texts(messages: list[dict]) -> list[str]:
    """demo/slack_receiver stores {"received_at", "path", "payload"}; the text is the payload's."""
    return [m["payload"].get("text") or json.dumps(m["payload"].get("blocks")) for m in messages]


def slack_check(day: date) -> int:
    """The summary dags/tripclick/notify.py posts last, every stage in it a success, and no failure alert."""
    texts = slack_texts(json.load(sys.stdin))
    summaries = [t for t in texts if f"finished for {day.isoformat()}" in t]
    alerts = [t for t in texts if ":red_circle:" in t]
    problems = []
    if len(summaries) != 1:
        problems.append(f"expected one summary for {day}, got {len(summaries)}")
    else:
        problems += [f"summary lacks '- {s}: success'" for s in STAGES if f"- {s}: success" not in summaries[0]]
    if alerts:
        problems.append(f"{len(alerts)} failure alert(s)")
    if problems:
        print(f"Slack receiver: {'; '.join(problems)}; messages: {texts}", file=sys.stderr)
        return 1
    print(f"Slack receiver: one summary for {day}, every stage a success, no alert")
    return 0


def outcomes(day: date, lake: Path, generated: Path, pg_dsn: str) -> int:
    """The local end-to-end happy path's assertions (tests/e2e/test_pipeline.py), on the kind run's data."""
    from collections import Counter

    import psycopg2  # the project's runtime pins (requirements.txt), as in the venv
    import pyarrow.dataset as ds

    summary = json.loads(generated.read_text())
    problems: list[str] = []

    def rows(layer: str) -> list[dict]:
        path = lake / layer / f"event_date={day.isoformat()}"
        if not path.exists():
            problems.append(f"no {layer} partition at {path}")
            return []
        return ds.dataset(str(path), format="parquet").to_table().to_pylist()

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    silver, bronze = rows("silver"), rows("bronze")
    keys = Counter(r["dedup_key"] for r in silver)
    check(len(silver) == summary["distinct_dedup_keys"], f"silver has {len(silver)} rows, expected the "
          f"{summary['distinct_dedup_keys']} distinct dedup keys generated")  # fmt: skip
    check(not keys or max(keys.values()) == 1, "silver holds a dedup_key more than once")
    check(len(bronze) == summary["events"], f"bronze has {len(bronze)} rows, expected all {summary['events']} events")
    check(all(r["source_file"] and r["ingest_time"] for r in bronze), "bronze rows without source_file/ingest_time")

    marts: dict[str, list[tuple]] = {}
    with psycopg2.connect(pg_dsn, connect_timeout=15) as conn, conn.cursor() as cur:
        for table in MARTS:
            cur.execute(f"SELECT * FROM {table} WHERE event_date = %s ORDER BY 1, 2, 3", (day.isoformat(),))  # noqa: S608
            marts[table] = cur.fetchall()
    traffic = marts["mart_daily_traffic"]
    if len(traffic) != 1:
        problems.append(f"mart_daily_traffic has {len(traffic)} rows for {day}, expected 1")
    else:
        total_events, unique_sessions, unique_documents = traffic[0][1], traffic[0][2], traffic[0][3]
        check(total_events == len(keys), f"mart_daily_traffic.total_events {total_events} != silver {len(keys)}")
        sessions = {r["session_id"] for r in silver}
        documents = {r["document_id"] for r in silver}
        check(unique_sessions == len(sessions) == len(marts["mart_session_analysis"]), "session counts disagree")
        check(unique_documents == len(documents) == len(marts["mart_popular_documents"]), "document counts disagree")
        check(sum(r[2] for r in marts["mart_session_analysis"]) == total_events, "session events do not add up")
        check(sum(r[3] for r in marts["mart_popular_documents"]) == total_events, "document events do not add up")
    areas = Counter(a for r in silver for a in r["clinical_areas"])
    check({r[1]: r[2] for r in marts["mart_clinical_areas"]} == dict(areas), "clinical areas differ from silver")

    if problems:
        print("outcomes: " + "\n  ".join(["FAILED", *problems]), file=sys.stderr)
        return 1
    print(f"outcomes: silver {len(silver)} rows (deduplicated), bronze {len(bronze)} rows, "
          f"gold marts consistent with silver for {day}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["dag-ready", "run", "slack-check", "outcomes"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--password-file", help="JSON {username: password}, from Secret tripclick-admin")
    parser.add_argument("--date", type=date.fromisoformat, help="the day to run, YYYY-MM-DD")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds")
    parser.add_argument("--lake", type=Path, help="outcomes: the lake root as seen from this machine")
    parser.add_argument("--generated", type=Path, help="outcomes: the JSON summary `python -m demo.datagen` printed")
    parser.add_argument("--pg-dsn", help="outcomes: libpq DSN of the gold database (password from PGPASSWORD)")
    args = parser.parse_args(argv)
    if args.command == "outcomes":
        if not (args.date and args.lake and args.generated and args.pg_dsn):
            parser.error("outcomes needs --date, --lake, --generated and --pg-dsn")
        return outcomes(args.date, args.lake, args.generated, args.pg_dsn)
    if args.command == "slack-check":
        if not args.date:
            parser.error("slack-check needs --date")
        return slack_check(args.date)
    if not args.password_file:
        parser.error(f"{args.command} needs --password-file")
    api = Api(args.url, args.password_file)
    if args.command == "dag-ready":
        return dag_ready(api, args.timeout)
    if not args.date:
        parser.error("run needs --date")
    return run(api, args.date, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
