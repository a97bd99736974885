"""The one happy-path check of a day, shared by tests/e2e and `make kind-test`: every task a success, silver
deduplicated, bronze complete, gold marts consistent with silver, one all-success Slack summary, no alert.

Each check returns the problems it found (empty: the day is good), so a test asserts on the list and a
script prints it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

DAG_ID = "tripclick_daily_pipeline"
# The stages of a day, as notify_completion's summary lists them (tests/dags checks they agree).
STAGES = ("preflight", "producer_server0", "producer_server1", "streaming_to_silver", "batch_to_bronze", "etl_to_gold")
# Tasks that a good day skips: discard_partial_day only deletes what a failed day left half-written.
SKIPPED_ON_A_GOOD_DAY = ("discard_partial_day",)
MARTS = ("mart_session_analysis", "mart_daily_traffic", "mart_clinical_areas", "mart_popular_documents")


def task_problems(run_state: str, tasks: list[dict]) -> list[str]:
    problems = [f"run ended {run_state!r}"] if run_state != "success" else []
    for t in tasks:
        expected = "skipped" if t["task_id"] in SKIPPED_ON_A_GOOD_DAY else "success"
        if t["state"] != expected:
            problems.append(f"task {t['task_id']} is {t['state']!r}, expected {expected!r}")
    return problems


def read_layer(lake: Path, layer: str, day: str) -> list[dict] | None:
    """The day's partition of a lake layer as rows; None if there is no partition."""
    import pyarrow.dataset as ds

    path = Path(lake) / layer / f"event_date={day}"
    if not path.exists():
        return None
    return ds.dataset(str(path), format="parquet").to_table().to_pylist()


def read_marts(conn, day: str) -> dict[str, list[tuple]]:
    """The day's rows of each gold mart (a missing table reads as no rows), ordered."""
    out = {}
    with conn.cursor() as cur:
        for table in MARTS:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                out[table] = []
                continue
            cur.execute(f"SELECT * FROM {table} WHERE event_date = %s ORDER BY 1, 2, 3", (day,))  # noqa: S608
            out[table] = cur.fetchall()
    return out


def day_problems(
    day: str, generated: dict, silver: list[dict] | None, bronze: list[dict] | None, marts: dict[str, list[tuple]]
) -> list[str]:
    """Silver, bronze and gold of `day` against what the generator wrote (`python -m demo.datagen`'s summary)."""
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    if silver is None:
        problems.append(f"no silver partition for {day}")
    if bronze is None:
        problems.append(f"no bronze partition for {day}")
    silver, bronze = silver or [], bronze or []
    keys = Counter(r["dedup_key"] for r in silver)
    check(generated["distinct_dedup_keys"] < generated["events"], "the generated day has no duplicate: dedup untested")
    check(len(silver) == generated["distinct_dedup_keys"], f"silver has {len(silver)} rows, expected the "
          f"{generated['distinct_dedup_keys']} distinct dedup keys generated")  # fmt: skip
    check(not keys or max(keys.values()) == 1, "silver holds a dedup_key more than once")
    check(
        len(bronze) == generated["events"], f"bronze has {len(bronze)} rows, expected all {generated['events']} events"
    )
    check(all(r["source_file"] and r["ingest_time"] for r in bronze), "bronze rows without source_file/ingest_time")

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
    return problems


def slack_texts(messages: list[dict]) -> list[str]:
    """The Slack stand-in stores {"received_at", "path", "payload"}; the text is the payload's."""
    return [m["payload"].get("text") or json.dumps(m["payload"].get("blocks")) for m in messages]


def slack_problems(texts: list[str], day: str) -> list[str]:
    """Exactly one summary for `day`, green, every stage a success; no failure alert."""
    head = f":large_green_circle: *{DAG_ID}* finished for {day}"
    summaries = [t for t in texts if f"finished for {day}" in t.splitlines()[0]]
    alerts = [t for t in texts if t.startswith(":red_circle:")]
    problems = []
    if len(summaries) != 1:
        problems.append(f"expected one summary for {day}, got {len(summaries)}")
    else:
        lines = summaries[0].splitlines()
        if lines[0] != head:
            problems.append(f"summary head is {lines[0]!r}, expected {head!r}")
        states = {}
        for line in lines[1:]:
            stage, _, rest = line.removeprefix("- ").partition(": ")
            states[stage] = rest.split(", started ")[0]
        problems += [f"summary lacks '- {s}: success'" for s in STAGES if states.get(s) != "success"]
        problems += [f"summary lacks '- {s}: skipped'" for s in SKIPPED_ON_A_GOOD_DAY if states.get(s) != "skipped"]
    if alerts:
        problems.append(f"{len(alerts)} failure alert(s)")
    return problems
