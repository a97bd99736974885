"""etl_to_gold: silver of day D -> the four gold marts in PostgreSQL.

    spark-submit etl_to_gold.py --date D --silver-path ROOT/silver --bronze-path ROOT/bronze
        --pg-dsn "host=H port=P dbname=tripclick_gold user=U"

The password is never an argument (it would show in the task log and the process list): libpq takes it
from PGPASSWORD or the PGPASSFILE the task environment provides.
Marts (primary key): mart_session_analysis (session_id, event_date), mart_daily_traffic (event_date),
mart_clinical_areas (event_date, clinical_area), mart_popular_documents (event_date, document_id).
The aggregates of one day are small, so they are collected on the driver and written with psycopg2 in ONE
transaction that first deletes that date's rows: a rerun replaces the day and touches no other date, and
a failure leaves the previous content in place. (No JDBC driver jar is needed on the cluster.)
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

# The driver runs this file with its folder on sys.path (client mode), so the sibling module imports.
from streaming_to_silver import spark_session

DDL = {
    "mart_session_analysis": """
        CREATE TABLE IF NOT EXISTS mart_session_analysis (
            session_id text NOT NULL, event_date date NOT NULL, clicks integer NOT NULL,
            unique_documents integer NOT NULL, unique_queries integer NOT NULL,
            first_event_time timestamptz NOT NULL, last_event_time timestamptz NOT NULL,
            duration_seconds double precision NOT NULL, PRIMARY KEY (session_id, event_date))""",
    "mart_daily_traffic": """
        CREATE TABLE IF NOT EXISTS mart_daily_traffic (
            event_date date PRIMARY KEY, total_events integer NOT NULL, unique_sessions integer NOT NULL,
            unique_documents integer NOT NULL, avg_clicks_per_session double precision NOT NULL,
            peak_hour_utc integer NOT NULL, peak_hour_events integer NOT NULL)""",
    "mart_clinical_areas": """
        CREATE TABLE IF NOT EXISTS mart_clinical_areas (
            event_date date NOT NULL, clinical_area text NOT NULL, events integer NOT NULL,
            unique_sessions integer NOT NULL, unique_documents integer NOT NULL,
            PRIMARY KEY (event_date, clinical_area))""",
    "mart_popular_documents": """
        CREATE TABLE IF NOT EXISTS mart_popular_documents (
            event_date date NOT NULL, document_id bigint NOT NULL, title text, clicks integer NOT NULL,
            unique_sessions integer NOT NULL, popularity_rank integer NOT NULL,
            PRIMARY KEY (event_date, document_id))""",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="etl_to_gold.py")
    ap.add_argument("--date", required=True)
    ap.add_argument("--silver-path", required=True)
    ap.add_argument("--bronze-path", required=True, help="accepted for a uniform interface; unused here")
    ap.add_argument(
        "--pg-dsn", required=True, help='libpq DSN without password, e.g. "host=db dbname=tripclick_gold user=etl"'
    )
    args = ap.parse_args(argv)
    if "password" in args.pg_dsn.lower():
        ap.error("--pg-dsn must not carry the password: use PGPASSWORD or PGPASSFILE in the task environment")
    return args


def build_marts(silver, day: str) -> dict:
    """Four small aggregations on the cluster; the day-level figures and ranks are derived on the driver."""
    sessions = (
        silver.groupBy("session_id")
        .agg(
            F.count("*").alias("clicks"),
            F.countDistinct("document_id").alias("unique_documents"),
            F.countDistinct("keywords").alias("unique_queries"),
            F.min("event_time").alias("first_event_time"),
            F.max("event_time").alias("last_event_time"),
        )
        .collect()
    )
    docs = (
        silver.groupBy("document_id")
        .agg(
            F.first("title", ignorenulls=True).alias("title"),
            F.count("*").alias("clicks"),
            F.countDistinct("session_id").alias("unique_sessions"),
        )
        .collect()
    )
    areas = (
        silver.select("session_id", "document_id", F.explode("clinical_areas").alias("clinical_area"))
        .groupBy("clinical_area")
        .agg(
            F.count("*").alias("events"),
            F.countDistinct("session_id").alias("unique_sessions"),
            F.countDistinct("document_id").alias("unique_documents"),
        )
        .collect()
    )
    hours = silver.groupBy(F.hour("event_time").alias("hour")).count().collect()
    if not sessions:
        return {"mart_session_analysis": []}

    total_events = sum(r.clicks for r in sessions)
    peak = min(hours, key=lambda r: (-r["count"], r.hour))
    # Dense rank by clicks (1 = most clicked), ties share a rank.
    distinct_clicks = sorted({r.clicks for r in docs}, reverse=True)
    rank_of = {clicks: i + 1 for i, clicks in enumerate(distinct_clicks)}
    return {
        "mart_session_analysis": [
            (
                r.session_id,
                day,
                r.clicks,
                r.unique_documents,
                r.unique_queries,
                r.first_event_time,
                r.last_event_time,
                (r.last_event_time - r.first_event_time).total_seconds(),
            )
            for r in sessions
        ],
        "mart_daily_traffic": [
            (
                day,
                total_events,
                len(sessions),
                len(docs),
                total_events / max(len(sessions), 1),
                peak.hour,
                peak["count"],
            )
        ],
        "mart_clinical_areas": [(day, r.clinical_area, r.events, r.unique_sessions, r.unique_documents) for r in areas],
        "mart_popular_documents": [
            (day, r.document_id, r.title, r.clicks, r.unique_sessions, rank_of[r.clicks]) for r in docs
        ],
    }


COLUMNS = {
    "mart_session_analysis": (
        "session_id, event_date, clicks, unique_documents, unique_queries, first_event_time, last_event_time, "
        "duration_seconds"
    ),
    "mart_daily_traffic": (
        "event_date, total_events, unique_sessions, unique_documents, avg_clicks_per_session, peak_hour_utc, "
        "peak_hour_events"
    ),
    "mart_clinical_areas": "event_date, clinical_area, events, unique_sessions, unique_documents",
    "mart_popular_documents": "event_date, document_id, title, clicks, unique_sessions, popularity_rank",
}


def write_marts(dsn: str, day: str, marts: dict) -> None:
    import psycopg2
    from psycopg2.extras import execute_values

    try:
        conn = psycopg2.connect(dsn, connect_timeout=15, application_name="etl_to_gold")
    except psycopg2.OperationalError as exc:
        raise SystemExit(
            f"etl_to_gold: ERROR: cannot connect to the gold database ({dsn}): {str(exc).strip()}"
        ) from None
    try:
        with conn, conn.cursor() as cur:  # one transaction: commit on success, rollback on any error
            for ddl in DDL.values():
                cur.execute(ddl)
            for table, rows in marts.items():
                cur.execute(f"DELETE FROM {table} WHERE event_date = %s", (day,))  # noqa: S608 - fixed names
                if rows:
                    execute_values(cur, f"INSERT INTO {table} ({COLUMNS[table]}) VALUES %s", rows, page_size=1000)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    day = args.date
    spark = spark_session()
    source = f"{args.silver_path.rstrip('/')}/event_date={day}"
    try:
        silver = spark.read.parquet(source)
    except Exception as exc:  # noqa: BLE001 - AnalysisException: path missing or no parquet file
        print(
            f"etl_to_gold: ERROR: no silver data for {day} at {source}: {str(exc).splitlines()[0]}. "
            f"Run streaming_to_silver for this date first.",
            file=sys.stderr,
        )
        return 2
    marts = build_marts(silver, day)
    if not marts["mart_session_analysis"]:
        print(f"etl_to_gold: ERROR: silver partition {source} is empty; nothing to publish for {day}", file=sys.stderr)
        return 2
    write_marts(args.pg_dsn, day, marts)
    for table, rows in marts.items():
        print(f"etl_to_gold: {table}: {len(rows)} rows for {day}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
