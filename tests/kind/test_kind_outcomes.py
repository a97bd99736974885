"""Step 11's checks (pipeline.py outcomes) against a real PostgreSQL holding the marts as etl_to_gold
creates them, and a lake written with pyarrow: consistent data passes, each kind of damage fails."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
DAY = "2020-06-01"


def etl_to_gold_ddl() -> dict[str, str]:
    apps = str(REPO / "workloads" / "spark")
    spec = importlib.util.spec_from_file_location("etl_to_gold", f"{apps}/etl_to_gold.py")
    module = importlib.util.module_from_spec(spec)
    # As in the Spark driver, the application's folder is on sys.path: it imports its sibling module.
    sys.path.insert(0, apps)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(apps)
    return module.DDL


@pytest.fixture(scope="module")
def postgres():
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not bins:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; scripts/system_deps.sh)")
    if os.geteuid() != 0:
        pytest.skip("starting PostgreSQL here needs root (it runs as the postgres user)")
    bindir = bins[0].parent
    # Not under pytest's tmp folder: that is private to root, and postgres must reach its data.
    root = Path(tempfile.mkdtemp(prefix="tripclick-kind-pg-"))
    root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    for folder in (data, sock):
        folder.mkdir()
        shutil.chown(folder, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), user="postgres", cwd="/", capture_output=True, text=True, **kwargs)

    # trust on loopback: a throw-away server for this module only, on a random loopback port.
    as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", check=True)
    server = subprocess.Popen(
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        user="postgres", cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if as_postgres(str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)).returncode == 0:
                break
            time.sleep(0.2)
        as_postgres(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tripclick_gold")
        yield f"host=127.0.0.1 port={port} dbname=tripclick_gold user=postgres"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def day_data(tmp_path, postgres):
    """A small day: 6 events, one duplicate, written the way the three Spark apps lay it out."""
    import psycopg2

    events = [
        {"dedup_key": "k1", "session_id": "s1", "document_id": 10, "clinical_areas": ["Cardiology"]},
        {"dedup_key": "k2", "session_id": "s1", "document_id": 11, "clinical_areas": ["Cardiology", "Oncology"]},
        {"dedup_key": "k3", "session_id": "s2", "document_id": 10, "clinical_areas": []},
        {"dedup_key": "k4", "session_id": "s3", "document_id": 12, "clinical_areas": ["Oncology"]},
        {"dedup_key": "k5", "session_id": "s3", "document_id": 12, "clinical_areas": ["Oncology"]},
    ]
    lake = tmp_path / "lake"
    silver = lake / "silver" / f"event_date={DAY}"
    bronze = lake / "bronze" / f"event_date={DAY}"
    silver.mkdir(parents=True)
    bronze.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(events), silver / "part-0.parquet")
    landed = [{**e, "source_file": "/landing/server0.json", "ingest_time": "2020-06-01T15:00:01Z"} for e in events]
    pq.write_table(pa.Table.from_pylist([*landed, landed[0]]), bronze / "part-0.parquet")
    generated = tmp_path / "generated.json"
    generated.write_text(json.dumps({"date": DAY, "events": len(events) + 1, "distinct_dedup_keys": len(events)}))

    sessions = Counter(e["session_id"] for e in events)
    documents = Counter(e["document_id"] for e in events)
    areas = Counter(a for e in events for a in e["clinical_areas"])
    with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
        for table, ddl in etl_to_gold_ddl().items():
            cur.execute(ddl)
            cur.execute(f"DELETE FROM {table}")  # noqa: S608
        cur.execute(
            "INSERT INTO mart_daily_traffic VALUES (%s, %s, %s, %s, %s, 15, %s)",
            (DAY, len(events), len(sessions), len(documents), len(events) / len(sessions), len(events)),
        )
        for session, clicks in sessions.items():
            cur.execute(
                "INSERT INTO mart_session_analysis VALUES (%s, %s, %s, 1, 1, now(), now(), 0)", (session, DAY, clicks)
            )
        for rank, (document, clicks) in enumerate(documents.most_common(), 1):
            cur.execute(
                "INSERT INTO mart_popular_documents VALUES (%s, %s, 't', %s, 1, %s)", (DAY, document, clicks, rank)
            )
        for area, count in areas.items():
            cur.execute("INSERT INTO mart_clinical_areas VALUES (%s, %s, %s, 1, 1)", (DAY, area, count))
    return lake, generated, postgres


def outcomes(lake: Path, generated: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REPO / "scripts/kind/pipeline.py"), "outcomes", "--date", DAY,
         "--lake", str(lake), "--generated", str(generated), "--pg-dsn", dsn],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_consistent_day_passes(day_data):
    done = outcomes(*day_data)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gold marts consistent with silver" in done.stdout


def test_a_lost_session_row_in_gold_fails(day_data):
    import psycopg2

    lake, generated, dsn = day_data
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM mart_session_analysis WHERE session_id = 's3'")
    done = outcomes(lake, generated, dsn)
    assert done.returncode == 1
    assert "session counts disagree" in done.stderr


def test_a_duplicate_left_in_silver_fails(day_data):
    lake, generated, dsn = day_data
    silver = lake / "silver" / f"event_date={DAY}"
    table = pq.read_table(silver / "part-0.parquet")
    pq.write_table(table.slice(0, 1), silver / "part-1.parquet")
    done = outcomes(lake, generated, dsn)
    assert done.returncode == 1
    assert "silver holds a dedup_key more than once" in done.stderr


def test_a_missing_bronze_partition_fails(day_data):
    lake, generated, dsn = day_data
    shutil.rmtree(lake / "bronze")
    done = outcomes(lake, generated, dsn)
    assert done.returncode == 1
    assert "no bronze partition" in done.stderr
