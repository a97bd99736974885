"""What the mid-flight fault tests share: the day's expected records, exactness checks of every layer, faults
injected while a run is in flight, and reading every task log the way the UI does."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from demo.stack import config
from tests.e2e import helpers

# Bounded waits for something that happens while a run is in flight (generous: 2 cores shared by 5 stacks).
FAULT_WAIT_TIMEOUT = 600
POLL_S = 0.2
# What Airflow's log reader puts in place of a log it could not find or fetch.
UNREADABLE_MARKERS = ("Could not read served logs", "Log file does not exist", "Could not read remote logs")


def source_records(day: str) -> list[dict]:
    """The day's records as the web servers hold them (both servers together)."""
    records = []
    for server in config.DOCKER_SERVERS:
        path = config.server_data_dir(server) / f"date={day}" / "events.json"
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records


def landed_records(day: str) -> list[dict]:
    """Every record the producers landed for the day, re-sent ones included."""
    return [
        json.loads(line)
        for path in helpers.landing_files(day)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def assert_day_exact(day: str) -> None:
    """Silver holds each of the day's events once; bronze holds every landed record (duplicates and re-sent
    events included); the marts agree with silver."""
    expected = {r["dedup_key"] for r in source_records(day)}
    silver = helpers.parquet_rows("silver", day)
    keys = Counter(r["dedup_key"] for r in silver)
    missing, extra = expected - set(keys), set(keys) - expected
    assert not missing and not extra, f"silver for {day}: {len(missing)} event(s) missing, {len(extra)} unexpected"
    assert max(keys.values()) == 1, f"silver for {day} holds an event twice: {keys.most_common(1)}"

    landed = Counter(r["dedup_key"] for r in landed_records(day))
    bronze = Counter(r["dedup_key"] for r in helpers.parquet_rows("bronze", day))
    assert bronze == landed, f"bronze for {day}: {sum(bronze.values())} rows, {sum(landed.values())} landed"

    marts = helpers.marts_snapshot(day)
    (traffic,) = marts["mart_daily_traffic"]
    assert traffic[1] == len(expected), traffic
    assert traffic[2] == len({r["session_id"] for r in silver}) == len(marts["mart_session_analysis"])
    assert traffic[3] == len({r["document_id"] for r in silver}) == len(marts["mart_popular_documents"])
    assert sum(row[2] for row in marts["mart_session_analysis"]) == len(expected)
    areas = Counter(a for r in silver for a in r["clinical_areas"])
    assert {row[1]: row[2] for row in marts["mart_clinical_areas"]} == dict(areas)


def silver_partition(day: str):
    return helpers.api.lake_partition("silver", day)


def bronze_partition(day: str):
    return helpers.api.lake_partition("bronze", day)


def assert_day_absent(day: str) -> None:
    """A failed day leaves no layer half-written: silver (with the stream's checkpoint), bronze and gold are
    absent, so nothing reads a partial day and a plain rerun rewrites them all."""
    checkpoint = config.lake_root() / "silver" / "_checkpoints" / "streaming_to_silver" / f"event_date={day}"
    for path in (silver_partition(day), checkpoint):
        assert not path.exists(), f"{path} is left from the failed day: {sorted(p.name for p in path.iterdir())[:5]}"
    helpers.assert_nothing_downstream(day)


def task_log_via_api(stack, run_id: str, task_id: str, try_number: int) -> list:
    """A try's log as the UI reads it: GET .../taskInstances/{task}/logs/{try}."""
    body = stack.airflow.call(
        "GET", f"/dags/{helpers.DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    )
    return body.get("content") or []


def log_text(entries: list) -> str:
    return "\n".join(e.get("event", "") if isinstance(e, dict) else str(e) for e in entries)


def assert_every_log_readable(stack, run, since: float | None = None) -> None:
    """Every try of every task that ran (deferred waits included) has a log the REST API serves; with
    ``since``, only the tries that started after it (tries run by `airflow dags test` have no log server)."""
    unreadable = {}
    for task_id in run.tasks:
        for t in stack.airflow.tries(run.run_id, task_id):
            if not t["try_number"] or not t["start_date"]:
                continue
            if since is not None and helpers.api.parse_time(t["start_date"]).timestamp() < since:
                continue
            entries = task_log_via_api(stack, run.run_id, task_id, t["try_number"])
            text = log_text(entries)
            if not entries or any(marker in text for marker in UNREADABLE_MARKERS):
                unreadable[f"{task_id} try {t['try_number']}"] = text[:300]
    assert not unreadable, unreadable


@contextmanager
def run_in_background(stack, day: str):
    """Trigger the day's run in a thread, so the test can act while it is in flight."""
    pool = ThreadPoolExecutor(1)
    try:
        yield pool.submit(stack.run, day)
    finally:
        pool.shutdown(wait=True)


def wait_for(what: str, check: Callable[[], object], run: Future, timeout: float = FAULT_WAIT_TIMEOUT):
    """Poll `check` until it returns something truthy; fail (saying so) if the run ended first."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if run.done():
            run.result()  # an error of the run itself first
            raise AssertionError(f"the run ended before {what}: the fault came too late to test anything")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        time.sleep(POLL_S)


def alerts_for(since: float, task_id: str, until: float | None = None) -> list[str]:
    return [t for t in helpers.slack_texts(since, until) if f"*{task_id}* failed" in t]


def retry_warnings(since: float, task_id: str, until: float | None = None) -> list[str]:
    return [t for t in helpers.slack_texts(since, until) if f"*{task_id}* will be retried" in t]
