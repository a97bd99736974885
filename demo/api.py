"""What the demo, the end-to-end tests and the benchmark read from the running local stack besides Airflow
(whose REST API is tripclick_ops.api): the Slack stand-in, the gold database, the lake's folders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from demo.stack import config
from tripclick_ops.api import ApiError, Client, parse_time, scheduled_time
from tripclick_ops.outcomes import MARTS

__all__ = ["MARTS", "ApiError", "Client", "airflow", "parse_time", "scheduled_time"]


def airflow() -> Client:
    """The REST client logged in to the local stack's api-server as its admin."""
    return Client(config.airflow_url(), config.ADMIN_USER, config.load_secrets()["admin_password"], config.DAG_ID)


def stack_ready() -> Client:
    """Start the local stack (reusing what is up) as `make demo-up` does, then the REST client once the DAG is
    parsed; exits with `up`'s code if the stack does not come up."""
    r = subprocess.run([sys.executable, "-m", "demo.stack", "up"], cwd=config.REPO, check=False)
    if r.returncode:
        raise SystemExit(r.returncode)
    client = airflow()
    client.wait_dag()
    return client


def slack_messages(since: float = 0.0, path: str = config.SLACK_PATH) -> list[dict]:
    """What the Slack stand-in received since `since` on one webhook: Airflow's by default, Alertmanager's
    with path=config.SLACK_ALERTS_PATH."""
    with urllib.request.urlopen(f"http://{config.HOST}:{config.PORTS['slack']}/messages", timeout=5) as resp:  # noqa: S310
        return [
            m
            for m in json.loads(resp.read())
            if m["received_at"] >= since and urllib.parse.urlsplit(m["path"]).path == path
        ]


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
    with gold_connect() as conn:
        from tripclick_ops.outcomes import read_marts

        return {table: len(rows) for table, rows in read_marts(conn, day).items()}


def lake_partition(layer: str, day: str) -> Path:
    return config.lake_root() / layer / f"event_date={day}"
