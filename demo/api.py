"""Small client for what the demo, the end-to-end tests and the benchmark ask of the running stack:
Airflow's REST API v2 (JWT from /auth/token), the Slack stand-in, the gold database, task log files.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

from demo.stack import config

TERMINAL = {"success", "failed"}
MARTS = ("mart_session_analysis", "mart_daily_traffic", "mart_clinical_areas", "mart_popular_documents")


class ApiError(RuntimeError):
    pass


class Airflow:
    def __init__(self, base: str | None = None) -> None:
        self.base = base or config.airflow_url()
        self._token: str | None = None
        # When each run was triggered or cleared here: a state that ended before that is the previous round's.
        self.triggered_at: dict[str, datetime] = {}

    def token(self) -> str:
        if self._token is None:
            body = json.dumps(
                {"username": config.ADMIN_USER, "password": config.load_secrets()["admin_password"]}
            ).encode()
            req = urllib.request.Request(
                f"{self.base}/auth/token", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        url = f"{self.base}/api/v2{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            req = urllib.request.Request(
                url,
                data=data,
                method=method,
                headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                    raw = resp.read()
                    return json.loads(raw) if raw else {}
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:  # token expired: log in again once
                    self._token = None
                    continue
                raise ApiError(
                    f"{method} {path}: HTTP {exc.code}: {exc.read()[:500].decode(errors='replace')}"
                ) from None
        raise AssertionError("unreachable")

    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call("GET", f"/dags/{dag_id}")
            except ApiError as exc:
                if "404" not in str(exc):
                    raise
            errors = self.call("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise ApiError("the DAG folder has import errors:\n" + "\n".join(e["stack_trace"] for e in errors))
            if time.monotonic() > deadline:
                raise ApiError(
                    f"DAG {dag_id} was not parsed within {timeout:.0f}s "
                    "(see .state/demo/logs/airflow-dag-processor.log)"
                )
            time.sleep(2)

    def run_for_date(self, dag_id: str, day: date) -> dict | None:
        logical = scheduled_time(day).isoformat()
        runs = self.call(
            "GET", f"/dags/{dag_id}/dagRuns", params={"logical_date_gte": logical, "logical_date_lte": logical}
        )["dag_runs"]
        return runs[0] if runs else None

    def trigger(self, dag_id: str, day: date) -> str:
        """Start the run of `day`; if that date already has a run, clear it so it runs again (Airflow allows
        one run per logical date: a rerun of a date is a clear, as in the UI)."""
        existing = self.run_for_date(dag_id, day)
        if existing:
            if existing["state"] not in TERMINAL:
                raise ApiError(f"run {existing['dag_run_id']} for {day} is still {existing['state']}")
            self.triggered_at[existing["dag_run_id"]] = datetime.now(UTC)
            self.call(
                "POST",
                f"/dags/{dag_id}/dagRuns/{existing['dag_run_id']}/clear",
                {"dry_run": False, "only_failed": False},
            )
            return existing["dag_run_id"]
        run_id = f"manual__{day.isoformat()}__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        self.triggered_at[run_id] = datetime.now(UTC)
        self.call(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": scheduled_time(day).isoformat(), "conf": {}},
        )
        return run_id

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def tasks(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"]

    def watch(self, dag_id: str, run_id: str, timeout: float, on_change=None) -> dict:
        """Poll until the run ends (for a run triggered or cleared here: ends after that); on_change(task_id, state,
        ti) for every task state change."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        while True:
            for ti in self.tasks(dag_id, run_id):
                state = ti.get("state")
                if seen.get(ti["task_id"], "?") != state:
                    seen[ti["task_id"]] = state
                    if on_change:
                        on_change(ti["task_id"], state, ti)
            run = self.run(dag_id, run_id)
            since = self.triggered_at.get(run_id)
            ended = parse_time(run.get("end_date"))
            if run["state"] in TERMINAL and (since is None or (ended is not None and ended >= since)):
                return run
            if time.monotonic() > deadline:
                raise ApiError(f"run {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)


def scheduled_time(day: date) -> datetime:
    """The scheduled time of day D's run: D 15:00 UTC (00:00 KST of D+1); the DAG processes event_date = D."""
    return datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)


def task_log_lines(dag_id: str, run_id: str, task_id: str, attempt: int | None = None) -> list[str]:
    """The task's log as readable lines (Airflow 3 writes JSON lines under AIRFLOW_HOME/logs)."""
    folder = config.state("airflow", "logs", f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}")
    files = sorted(folder.glob("attempt=*.log"), key=lambda p: int(p.stem.split("=")[1]))
    if attempt is not None:
        files = [p for p in files if p.stem == f"attempt={attempt}"]
    if not files:
        return [f"(no log file under {folder})"]
    return [_fmt(line) for line in files[-1].read_text(errors="replace").splitlines() if line.strip()]


def _fmt(line: str) -> str:
    try:
        rec = json.loads(line)
    except ValueError:
        return line
    if not isinstance(rec, dict):
        return line
    text = f"{rec.get('timestamp', '')[11:19]} {rec.get('level', '').upper():<7} {rec.get('event', '')}"
    for err in rec.get("error_detail") or []:
        text += f"\n    {err.get('exc_type')}: {err.get('exc_value')}"
    return text


def slack_messages(since: float = 0.0) -> list[dict]:
    with urllib.request.urlopen(f"http://{config.HOST}:{config.PORTS['slack']}/messages", timeout=5) as resp:  # noqa: S310
        return [m for m in json.loads(resp.read()) if m["received_at"] >= since]


def gold_connect():
    import psycopg2

    return psycopg2.connect(
        host=config.HOST,
        port=config.PORTS["postgres"],
        dbname=config.PG_DB_GOLD,
        user=config.PG_USER_GOLD,
        password=config.load_secrets()["pg_gold_password"],
        connect_timeout=5,
    )


def mart_rows(day: str) -> dict[str, int]:
    out = {}
    with gold_connect() as conn, conn.cursor() as cur:
        for table in MARTS:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                out[table] = 0
                continue
            cur.execute(f"SELECT count(*) FROM {table} WHERE event_date = %s", (day,))  # noqa: S608
            out[table] = cur.fetchone()[0]
    return out


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def lake_partition(layer: str, day: str) -> Path:
    return config.lake_root() / layer / f"event_date={day}"
