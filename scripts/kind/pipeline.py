#!/usr/bin/env python3
"""The REST side of `make kind-test`: talk to the api-server through kubectl port-forward.

    pipeline.py dag-ready   --url URL --password-file F        no import errors, DAG parsed
    pipeline.py run         --url URL --password-file F --date YYYY-MM-DD [--timeout S]
    pipeline.py slack-check --date YYYY-MM-DD  < messages.json  completion message, no alert

`run` unpauses tripclick_daily_pipeline, triggers it for the date (logical date = 15:00 UTC that day, the
scheduled time), polls until the run ends, prints every task's state, and on failure prints the log of
each failed task. Exit status 0 only if the run and every task succeeded.
Standard library only, so it runs with any Python 3.10+.
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


def slack_check(day: date) -> int:
    """The summary dags/tripclick/notify.py posts last, and none of its failure alerts."""
    texts = [str(m.get("text", "")) for m in json.load(sys.stdin)]
    done = [t for t in texts if f"finished for {day.isoformat()}" in t and ":large_green_circle:" in t]
    alerts = [t for t in texts if ":red_circle:" in t]
    if alerts or len(done) != 1:
        print(f"Slack receiver: expected one summary for {day} and no alert, got {texts}", file=sys.stderr)
        return 1
    print(f"Slack receiver: summary for {day}, no alert")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["dag-ready", "run", "slack-check"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--password-file", help="JSON {username: password}, from Secret tripclick-admin")
    parser.add_argument("--date", type=date.fromisoformat, help="the day to run, YYYY-MM-DD")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds")
    args = parser.parse_args(argv)
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
