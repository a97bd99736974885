"""One client of Airflow's REST API v2 for the local stack, `make kind-test` and production (through
`kubectl port-forward svc/<release>-api-server 8080:8080`), built on the official apache-airflow-client.

Login is POST /auth/token with username and password: the Simple and the FAB auth manager both answer it
with a JWT, which the generated client's own `login` (a redirect to the UI's login page) does not give.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import airflow_client.client as af
import urllib3
from airflow_client.client.exceptions import ApiException
from urllib3.util.retry import Retry

DAG_ID = "tripclick_daily_pipeline"
TERMINAL = {"success", "failed"}
# The scheduled time of day D's run is D 15:00 UTC (00:00 KST of D+1); the run processes event_date = D.
SCHEDULE_HOUR_UTC = 15
# An api-server answers 5xx or drops connections for a few seconds while it or its metadata database restarts
# (a pod rescheduled, PostgreSQL restarted). urllib3 retries such a call with backoff (pauses of 0, 1, 2, 4, 8
# and 8 s: 23 s in all), as the task SDK's own client does for the execution API; a request that may have been
# acted upon is retried on a 5xx only when it is idempotent (urllib3's default methods: never POST, so a
# trigger is never sent twice). After the last try the caller gets the response and its status.
TRANSIENT = Retry(
    total=6,
    backoff_factor=0.5,
    backoff_max=8,
    status_forcelist=(500, 502, 503, 504),
    raise_on_status=False,
)


class ApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def scheduled_time(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, SCHEDULE_HOUR_UTC, 0, tzinfo=UTC)


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def as_dict(model: Any) -> dict:
    """A response model as the JSON the API sent (strings for times, None kept), as the UI sees it."""
    return model.model_dump(mode="json", by_alias=True)


def password_from_file(path: str | Path) -> str:
    """A file holding only the password (the key `password` of Secret tripclick-admin), so it stays out of
    the shell's history and the process list."""
    try:
        password = Path(path).read_text().strip()
    except OSError as exc:
        raise ApiError(f"cannot read the password file {path}: {exc}") from None
    if not password:
        raise ApiError(f"the password file {path} is empty: write the password of the admin user into it")
    return password


class Client:
    """tripclick_daily_pipeline (or `dag_id`) on one api-server."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        dag_id: str = DAG_ID,
        timeout: float = 60,
        retries: Retry = TRANSIENT,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.dag_id = dag_id
        self.timeout = timeout
        self._credentials = (username, password)
        self.api = af.ApiClient(af.Configuration(host=self.url, retries=retries))
        self.dags = af.DAGApi(self.api)
        self.runs = af.DagRunApi(self.api)
        self.tis = af.TaskInstanceApi(self.api)
        self.backfills = af.BackfillApi(self.api)
        self.variables = af.VariableApi(self.api)
        self.import_errors = af.ImportErrorApi(self.api)
        # When each run was triggered or cleared here: a state that ended before that is the previous round's.
        self.triggered_at: dict[str, datetime] = {}
        self._login()

    # ------------------------------------------------------------------------------------- transport
    def _login(self) -> None:
        username, password = self._credentials
        try:
            resp = self.api.rest_client.request(
                "POST",
                f"{self.url}/auth/token",
                headers={"Content-Type": "application/json"},
                body={"username": username, "password": password},
                _request_timeout=self.timeout,
            )
            resp.read()
        except Exception as exc:  # noqa: BLE001 - urllib3's many connection errors, one message
            raise ApiError(f"cannot reach {self.url}/auth/token: {exc}") from None
        if resp.status not in (200, 201):
            raise ApiError(f"login as {username!r} at {self.url}: HTTP {resp.status}: {resp.data[:300]!r}")
        self.api.configuration.access_token = json.loads(resp.data)["access_token"]

    def _do(self, fn: Callable, *args, **kwargs):
        """Call a generated API method; log in again once when the token expired."""
        for attempt in (1, 2):
            try:
                return fn(*args, _request_timeout=self.timeout, **kwargs)
            except ApiException as exc:
                if exc.status == 401 and attempt == 1:
                    self._login()
                    continue
                raise ApiError(f"{fn.__name__}: HTTP {exc.status}: {str(exc.body)[:500]}", exc.status) from None
            except urllib3.exceptions.HTTPError as exc:
                reason = f"cannot reach {self.url} after {self.retries.total} retries: {exc}"
                raise ApiError(f"{fn.__name__}: {reason}") from None
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        """Any /api/v2 endpoint by path, over the client's transport and token (for what has no helper here)."""

        def request(_request_timeout: float) -> dict:
            _, url, headers, payload, _ = self.api.param_serialize(
                method=method,
                resource_path=f"/api/v2{path}",
                query_params=list((params or {}).items()),
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body,
                auth_settings=["OAuth2PasswordBearer", "HTTPBearer"],
            )
            resp = self.api.call_api(method, url, headers, payload, _request_timeout=_request_timeout)
            resp.read()
            if resp.status >= 400:
                raise ApiException(status=resp.status, reason=resp.reason, body=resp.data.decode(errors="replace"))
            return json.loads(resp.data) if resp.data else {}

        request.__name__ = f"{method} {path}"
        return self._do(request)

    # ------------------------------------------------------------------------------------------ DAG
    def wait_dag(self, timeout: float = 180) -> dict:
        """Wait until the DAG is parsed; fail at once on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return as_dict(self._do(self.dags.get_dag, self.dag_id))
            except ApiError as exc:
                if "HTTP 404" not in str(exc):
                    raise
            errors = self._do(self.import_errors.get_import_errors).import_errors
            if errors:
                raise ApiError(
                    "the DAG folder has import errors:\n" + "\n".join(f"{e.filename}:\n{e.stack_trace}" for e in errors)
                )
            if time.monotonic() > deadline:
                raise ApiError(f"DAG {self.dag_id} was not parsed within {timeout:.0f}s (see the dag-processor's log)")
            time.sleep(2)

    def set_paused(self, paused: bool) -> dict:
        return as_dict(self._do(self.dags.patch_dag, self.dag_id, af.DAGPatchBody(is_paused=paused)))

    def is_paused(self) -> bool:
        return bool(self._do(self.dags.get_dag, self.dag_id).is_paused)

    # ----------------------------------------------------------------------------------------- runs
    def run_for_date(self, day: date) -> dict | None:
        logical = scheduled_time(day)
        runs = self._do(
            self.runs.get_dag_runs, self.dag_id, logical_date_gte=logical, logical_date_lte=logical
        ).dag_runs
        return as_dict(runs[0]) if runs else None

    def trigger(self, day: date, prefix: str = "manual") -> str:
        """Start the run of `day`; if that date already has a run, clear it so it runs again (Airflow keeps one
        run per logical date: a rerun of a date is a clear, as in the UI)."""
        existing = self.run_for_date(day)
        if existing:
            run_id = existing["dag_run_id"]
            if existing["state"] not in TERMINAL:
                raise ApiError(f"run {run_id} for {day} is still {existing['state']}")
            self.triggered_at[run_id] = datetime.now(UTC)
            self._do(self.runs.clear_dag_run, self.dag_id, run_id, af.DAGRunClearBody(dry_run=False, only_failed=False))
            return run_id
        run_id = f"{prefix}__{day.isoformat()}__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        self.triggered_at[run_id] = datetime.now(UTC)
        self._do(
            self.runs.trigger_dag_run,
            self.dag_id,
            af.TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=scheduled_time(day), conf={}),
        )
        return run_id

    def run(self, run_id: str) -> dict:
        return as_dict(self._do(self.runs.get_dag_run, self.dag_id, run_id))

    def tasks(self, run_id: str) -> list[dict]:
        return [
            as_dict(t) for t in self._do(self.tis.get_task_instances, self.dag_id, run_id, limit=100).task_instances
        ]

    def tries(self, run_id: str, task_id: str) -> list[dict]:
        return [
            as_dict(t) for t in self._do(self.tis.get_task_instance_tries, self.dag_id, run_id, task_id).task_instances
        ]

    def watch(self, run_id: str, timeout: float, on_change: Callable | None = None, poll: float = 2) -> dict:
        """Poll until the run ends (for a run triggered or cleared here: ends after that); on_change(task_id,
        state, ti) for every task state change."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        while True:
            for ti in self.tasks(run_id):
                if seen.get(ti["task_id"], "?") != ti["state"]:
                    seen[ti["task_id"]] = ti["state"]
                    if on_change:
                        on_change(ti["task_id"], ti["state"], ti)
            run = self.run(run_id)
            since = self.triggered_at.get(run_id)
            ended = parse_time(run.get("end_date"))
            if run["state"] in TERMINAL and (since is None or (ended is not None and ended >= since)):
                return run
            if time.monotonic() > deadline:
                raise ApiError(f"run {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def clear_stage(self, day: date, stage: str) -> str:
        """Run `stage` of `day` again with everything downstream of it; the other tasks keep their tries."""
        run = self.run_for_date(day)
        if run is None:
            raise ApiError(
                f"{self.dag_id} has no run for {day}: run the whole day instead (make backfill FROM={day} TO={day})"
            )
        if run["state"] not in TERMINAL:
            raise ApiError(f"run {run['dag_run_id']} for {day} is still {run['state']}: wait until it ends, then rerun")
        self.triggered_at[run["dag_run_id"]] = datetime.now(UTC)
        self._do(
            self.tis.post_clear_task_instances,
            self.dag_id,
            af.ClearTaskInstancesBody(
                dag_run_id=run["dag_run_id"],
                task_ids=[af.ClearTaskInstancesBodyTaskIdsInner(stage)],
                include_downstream=True,
                include_upstream=False,
                only_failed=False,
                dry_run=False,
                reset_dag_runs=True,
            ),
        )
        return run["dag_run_id"]

    # ------------------------------------------------------------------------------------- backfill
    def backfill(self, first: date, last: date, max_active_runs: int = 1, reprocess: str = "failed") -> dict:
        """Airflow 3's backfill of the days first..last (both included): at most `max_active_runs` at once;
        `reprocess` says what happens to days that already have a run (none, failed or completed)."""
        body = af.BackfillPostBody(
            dag_id=self.dag_id,
            from_date=scheduled_time(first),
            to_date=scheduled_time(last),
            max_active_runs=max_active_runs,
            reprocess_behavior=af.ReprocessBehavior(reprocess),
            run_backwards=False,
        )
        return as_dict(self._do(self.backfills.create_backfill, body))

    def wait_backfill(self, backfill_id: int, timeout: float, poll: float = 5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            backfill = as_dict(self._do(self.backfills.get_backfill, backfill_id))
            if backfill["completed_at"]:
                return backfill
            if time.monotonic() > deadline:
                raise ApiError(f"backfill {backfill_id} not completed after {timeout:.0f}s")
            time.sleep(poll)

    # ----------------------------------------------------------------------------------------- logs
    def log_lines(self, run_id: str, task_id: str, try_number: int | None = None) -> list[str]:
        """The task's log as the UI shows it: the whole content from the api-server (which reads the file, the
        worker's log server or remote storage), read raw so a deferred task's trigger lines come through."""
        if try_number is None:
            try_number = max((t["try_number"] for t in self.tries(run_id, task_id)), default=0)
        if not try_number:
            return [f"({task_id} has not run in {run_id})"]

        def fetch(_request_timeout: float):
            resp = self.tis.get_log_without_preload_content(
                self.dag_id, run_id, task_id, try_number, full_content=True, accept="application/json",
                _request_timeout=_request_timeout,
            )  # fmt: skip
            body = resp.read()  # a raw urllib3 response: read once, no cached .data
            if resp.status >= 400:
                raise ApiException(status=resp.status, reason=resp.reason, body=body.decode(errors="replace"))
            return json.loads(body)

        fetch.__name__ = "get_log"
        content = self._do(fetch).get("content") or []
        return [format_log_line(item) for item in content]


def format_log_line(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    text = (
        f"{str(item.get('timestamp') or '')[11:19]} {str(item.get('level') or '').upper():<7} {item.get('event', '')}"
    )
    for err in item.get("error_detail") or []:
        text += f"\n    {err.get('exc_type')}: {err.get('exc_value')}"
    return text
