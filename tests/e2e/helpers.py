"""What the end-to-end tests do to and read from the running stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds

from demo import api
from demo.datagen.generate import generate_day, write_day
from demo.stack import airflow as stack_airflow
from demo.stack import config, proc
from demo.stack.services import DockerDaemon, SlackReceiver, SparkMaster, SparkWorker
from tripclick_ops import outcomes

REPO = config.REPO
DAG_ID = config.DAG_ID
EVENTS = 2000
RUN_TIMEOUT = 900  # bounded wait for one run; the run itself takes a few minutes here
WATCH_POLL_S = 1  # how often a test asks whether its run ended: each run's end is noticed this much late at most
STAGES = outcomes.STAGES
# The last line of a failure alert for a configuration problem (a missing Connection, a malformed Variable).
NOT_RETRIED = "not retried: configuration problem; fix it, then clear the task"


@dataclass
class Run:
    day: str
    run_id: str
    state: str
    started: float
    tasks: dict[str, dict] = field(default_factory=dict)
    # When the run was seen to end, and where the StatsD capture stood when it was triggered and when it was
    # seen to end: a run another test made earlier is read within these bounds.
    statsd_offset: int = 0
    ended: float | None = None
    statsd_end: int | None = None

    def statsd_lines(self) -> str:
        """What the StatsD capture received while this run went on."""
        with config.statsd_store().open() as f:
            f.seek(self.statsd_offset)
            return f.read(None if self.statsd_end is None else self.statsd_end - self.statsd_offset)

    def log(self, task_id: str) -> str:
        """The task's last try's log as the UI shows it (through the REST API)."""
        return "\n".join(api.airflow().log_lines(self.run_id, task_id))


class Stack:
    def __init__(self) -> None:
        self.airflow = api.airflow()

    # ----------------------------------------------------------------------------------------- data
    def reset_day(self, day: str) -> None:
        """Forget everything of `day` downstream (landing, lake, marts) so a test sees only its own run."""
        for path in (
            config.landing_dir() / f"event_date={day}",
            api.lake_partition("silver", day),
            api.lake_partition("bronze", day),
            config.lake_root() / "silver" / "_checkpoints" / "streaming_to_silver" / f"event_date={day}",
        ):
            shutil.rmtree(path, ignore_errors=True)
        with api.gold_connect() as conn, conn.cursor() as cur:
            for table in api.MARTS:
                cur.execute("SELECT to_regclass(%s)", (table,))
                if cur.fetchone()[0] is not None:
                    cur.execute(f"DELETE FROM {table} WHERE event_date = %s", (day,))  # noqa: S608

        # Containers a failed producer left behind in an earlier session (they are kept for inspection).
        for server in config.DOCKER_SERVERS:
            if self.docker(server).pid():
                for container in self.containers_for_day(server, day):
                    container.remove(force=True)

    def generate(self, day: str) -> dict:
        return write_day(
            date.fromisoformat(day), generate_day(date.fromisoformat(day), EVENTS, seed=7), config.state("servers")
        )

    # ----------------------------------------------------------------------------------------- runs
    def run(self, day: str) -> Run:
        self.airflow.wait_dag()
        statsd_offset = statsd_size()
        started = time.time()
        run_id = self.airflow.trigger(date.fromisoformat(day))
        return self.finished(day, run_id, started, statsd_offset)

    def finished(self, day: str, run_id: str, started: float, statsd_offset: int = 0) -> Run:
        """Wait for a run triggered or cleared at `started` to end."""
        result = self.airflow.watch(run_id, timeout=RUN_TIMEOUT, poll=WATCH_POLL_S)
        tasks = {ti["task_id"]: ti for ti in self.airflow.tasks(run_id)}
        ended, statsd_end = time.time(), statsd_size()
        return Run(day, run_id, result["state"], started, tasks, statsd_offset, ended, statsd_end)

    def tries(self, run: Run, task_id: str) -> list[dict]:
        """The task's tries in this run (a rerun of a date clears it, so earlier tries stay in its history)."""
        return [
            t
            for t in self.airflow.tries(run.run_id, task_id)
            if t["start_date"] and api.parse_time(t["start_date"]).timestamp() >= run.started
        ]

    @contextmanager
    def variables(self, **values: str):
        """Store Variables in the metadata database for the runs inside the block (through the REST API, as an
        operator would in the UI). Only Variables the stack does not set in the environment can be changed so:
        an AIRFLOW_VAR_* environment variable wins over the database."""
        env = stack_airflow.env()
        for key in values:
            assert f"AIRFLOW_VAR_{key.upper()}" not in env, f"{key} is set in the environment; the database loses"
        try:
            for key, value in values.items():
                self.delete_variable(key)
                self.airflow.call("POST", "/variables", {"key": key, "value": value})
            yield
        finally:
            for key in values:
                self.delete_variable(key)

    def delete_variable(self, key: str) -> None:
        try:
            self.airflow.call("DELETE", f"/variables/{key}")
        except api.ApiError as exc:
            if "HTTP 404" not in str(exc):
                raise

    def forget_stored_variables(self) -> None:
        """The demo's configuration is environment only: drop tripclick_* Variables an interrupted session left
        in the database."""
        stored = self.airflow.call("GET", "/variables", params={"limit": 100})["variables"]
        for var in stored:
            if var["key"].startswith("tripclick_"):
                self.delete_variable(var["key"])

    def wait_no_alive_spark_worker(self, timeout: float = 90) -> list[dict]:
        """Wait until the master no longer lists an ALIVE worker (it notices a stopped worker by itself)."""
        master = SparkMaster()
        deadline = time.monotonic() + timeout
        while True:
            workers = master.master_json().get("workers", [])
            if not [w for w in workers if w.get("state") == "ALIVE"]:
                return workers
            if time.monotonic() > deadline:
                raise AssertionError(f"the Spark master still lists an ALIVE worker after {timeout:.0f}s: {workers}")
            time.sleep(1)

    def dags_test_tries(self, day: str, task_id: str, since: float) -> list[dict]:
        """The task's tries since `since` in the runs `airflow dags test` made for `day` (each gets a new run id)."""
        logical = api.scheduled_time(date.fromisoformat(day)).isoformat()
        runs = self.airflow.call(
            "GET", f"/dags/{DAG_ID}/dagRuns", params={"logical_date_gte": logical, "logical_date_lte": logical}
        )["dag_runs"]
        return [
            t
            for r in runs
            for t in self.airflow.tries(r["dag_run_id"], task_id)
            if t["start_date"] and api.parse_time(t["start_date"]).timestamp() >= since
        ]

    def dags_test(self, day: str, *, unset: tuple[str, ...] = (), extra_env: dict | None = None):
        """`airflow dags test` in its own process with a changed environment (what a task pod would see with
        a Secret missing or a wrong mount). The DAG is paused meanwhile so the scheduler leaves that run alone."""
        env = stack_airflow.env()
        for key in unset:
            env.pop(key, None)
        env.update(extra_env or {})
        self.airflow.set_paused(True)
        try:
            return subprocess.run(
                [str(config.VENV_BIN / "airflow"), "dags", "test", DAG_ID, f"{day}T15:00:00+00:00"],
                env=env,
                cwd=config.state("airflow"),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            self.airflow.set_paused(False)

    # ------------------------------------------------------------------------------------- services
    def docker(self, server: str) -> DockerDaemon:
        return DockerDaemon(server)

    def slack(self) -> SlackReceiver:
        return SlackReceiver()

    def spark(self) -> tuple[SparkMaster, SparkWorker]:
        return SparkMaster(), SparkWorker()

    def container_events(self, server: str, since: float, until: float | None = None) -> list[dict]:
        client = self.docker(server).client()
        try:
            # Sub-second bounds ("seconds.fraction"): a whole-second `since` would also return what happened just
            # before the test's start, e.g. reset_day removing an earlier session's containers.
            events = client.events(
                since=f"{since:.6f}",
                until=f"{(until or time.time() + 1):.6f}",
                decode=True,
                filters={"type": "container"},
            )
            return [
                {"action": e.get("Action") or e.get("status"), **(e.get("Actor", {}).get("Attributes") or {})}
                for e in events
            ]
        finally:
            client.close()

    def containers_for_day(self, server: str, day: str) -> list:
        client = self.docker(server).client()
        try:
            return client.containers.list(all=True, filters={"label": f"org.tripclick.event-date={day}"})
        finally:
            client.close()


# --------------------------------------------------------------------------------------------- lake
def parquet_rows(layer: str, day: str) -> list[dict]:
    path = api.lake_partition(layer, day)
    if not path.exists():
        return []
    return ds.dataset(str(path), format="parquet").to_table().to_pylist()


def marts_snapshot(day: str) -> dict[str, list[tuple]]:
    with api.gold_connect() as conn:
        return outcomes.read_marts(conn, day)


def slack_texts(since: float, until: float | None = None) -> list[str]:
    messages = api.slack_messages(since)
    return outcomes.slack_texts([m for m in messages if until is None or m["received_at"] <= until])


def day_problems(day: str, generated: dict) -> list[str]:
    """The happy-path check of a day's lake and marts against what was generated (empty: the day is exact)."""
    lake = config.lake_root()
    return outcomes.day_problems(
        day, generated, outcomes.read_layer(lake, "silver", day), outcomes.read_layer(lake, "bronze", day),
        marts_snapshot(day),
    )  # fmt: skip


def summaries(since: float, day: str, until: float | None = None) -> list[str]:
    """The day's summaries (notify_completion), good or bad, received since `since`."""
    heads = (f":large_green_circle: *{DAG_ID}* finished for {day}", f":red_circle: *{DAG_ID}* did not finish for {day}")
    return [t for t in slack_texts(since, until) if t.splitlines()[0].startswith(heads)]


def summary_groups(text: str, day: str) -> dict[str, set[str]]:
    """{group: stages} of a bad day's first line (`... did not finish for <day>: failed: a, b; not run: c`)."""
    head = text.splitlines()[0]
    prefix = f":red_circle: *{DAG_ID}* did not finish for {day}: "
    assert head.startswith(prefix), head
    out: dict[str, set[str]] = {}
    for group in head[len(prefix) :].split("; "):
        label, _, stages = group.partition(": ")
        assert label not in out and stages, head
        out[label] = set(stages.split(", "))
        assert len(out[label]) == len(stages.split(", ")), head
    return out


def summary_states(text: str) -> dict[str, str]:
    """{stage: state} of the summary's stage lines (`- <stage>: <state>, started <when>, took <duration>`)."""
    states = {}
    for line in text.splitlines()[1:]:
        assert line.startswith("- ") and ", started " in line and ", took " in line, line
        stage, _, rest = line[2:].partition(": ")
        states[stage] = rest.split(", started ")[0]
    return states


def assert_nothing_downstream(day: str) -> None:
    assert not api.lake_partition("bronze", day).exists(), f"bronze partition for {day} was written"
    assert all(not rows for rows in marts_snapshot(day).values()), f"gold marts have rows for {day}"


def leftover_processes() -> list[str]:
    return [f"pid {pid}: {text}" for pid, text in proc.leftovers()]


def landing_files(day: str) -> list[Path]:
    folder = config.landing_dir() / f"event_date={day}"
    return sorted(p for p in folder.glob("*.json")) if folder.exists() else []


def emails(since: float, until: float | None = None) -> list[dict]:
    """Mails the stack's SMTP server accepted since `since` (demo/smtp_receiver's store)."""
    path = config.smtp_store()
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [m for m in found if m["received_at"] >= since and (until is None or m["received_at"] <= until)]


def statsd_size() -> int:
    store = config.statsd_store()
    return store.stat().st_size if store.exists() else 0


def statsd_lines() -> list[str]:
    """Every StatsD line Airflow sent to the stack's capture since it first started (demo/statsd_capture)."""
    path = config.statsd_store()
    return path.read_text().splitlines() if path.exists() else []
