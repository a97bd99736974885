"""Generate a deterministic synthetic TripClick day in the real record format, split across web servers.

    python -m demo.datagen --date 2026-11-20 [--events 4000] [--seed 7] [--out .state/demo/servers]

Writes <out>/server0/data/date=D/events.json and <out>/server1/... (JSON lines). Sessions go to
server md5(SessionId) % 2, as in production. About 1% of the clicks are logged twice (same record), so
the silver layer's dedup on dedup_key has something to remove. Same date + seed + size = same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import xxhash

CLINICAL_AREAS = [
    "Cardiology",
    "Oncology",
    "Neurology",
    "Paediatrics",
    "Infectious Diseases",
    "Primary Care",
    "Psychiatry",
    "Endocrinology",
    "Respiratory",
    "Gastroenterology",
    "Obstetrics and Gynaecology",
    "Rheumatology",
    "Emergency Medicine",
    "Nephrology",
    "Dermatology",
    "Geriatrics",
]
TERMS = [
    "hypertension",
    "asthma",
    "diabetes",
    "statin",
    "atrial fibrillation",
    "sepsis",
    "covid-19",
    "depression",
    "migraine",
    "copd",
    "pregnancy",
    "antibiotics",
    "heart failure",
    "stroke",
    "dementia",
    "obesity",
    "vitamin d",
    "otitis media",
    "low back pain",
    "anticoagulation",
    "insulin",
    "breast cancer",
    "eczema",
]
PUBLISHERS = [
    "https://www.ncbi.nlm.nih.gov/pubmed/",
    "https://www.nice.org.uk/guidance/",
    "https://www.cochranelibrary.com/cdsr/doi/",
    "https://www.bmj.com/content/",
]
# Share of a day's sessions starting in each UTC hour (TripClick traffic follows European/US daytime).
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 8, 8, 9, 9, 8, 7, 6, 5, 4, 3, 3, 2]
DUPLICATE_RATE = 0.01


@dataclass
class Doc:
    id: int
    title: str
    url: str
    doi: str
    areas: list[str]


def server_of(session_id: str, servers: int = 2) -> int:
    return int(hashlib.md5(session_id.encode()).hexdigest(), 16) % servers  # noqa: S324 - partitioning, not security


def dedup_key(session_id: str, document_id: int, event_ts: str) -> str:
    return xxhash.xxh64(f"{session_id}|{document_id}|{event_ts}".encode()).hexdigest()


def fmt_ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def make_docs(rng: random.Random, n: int) -> list[Doc]:
    docs = []
    for i in range(n):
        doc_id = 1_000_000 + i * 7 + rng.randrange(7)
        words = rng.sample(TERMS, 2)
        kind = rng.choice(["a systematic review", "guideline", "randomised trial", "cohort study", "evidence summary"])
        title = f"{words[0].capitalize()} and {words[1]}: {kind}"
        pub = rng.choice(PUBLISHERS)
        doi = (
            f"10.{rng.randrange(1000, 9999)}/{''.join(rng.choices(string.ascii_lowercase + string.digits, k=10))}"
            if rng.random() < 0.7
            else ""
        )
        areas = rng.sample(CLINICAL_AREAS, rng.choice([1, 1, 2, 2, 3]))
        docs.append(Doc(doc_id, title, f"{pub}{doc_id}", doi, areas))
    return docs


def generate_day(day: dt.date, events: int, seed: int) -> list[dict]:
    rng = random.Random(f"tripclick:{seed}:{day.isoformat()}")
    docs = make_docs(rng, max(50, events // 8))
    # Popularity: a few documents get most clicks (Zipf-like weights).
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(docs))]
    day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    day_end = day_start + dt.timedelta(days=1) - dt.timedelta(milliseconds=1)
    out: list[dict] = []
    while len(out) < events:
        session_id = "".join(rng.choices(string.ascii_lowercase + string.digits, k=24))
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        t = day_start + dt.timedelta(hours=hour, seconds=rng.uniform(0, 3600))
        query = " ".join(rng.sample(TERMS, rng.choice([1, 1, 2])))
        shown = rng.choices(docs, weights=weights, k=10)
        for _ in range(min(rng.choice([1, 1, 2, 3, 4, 5, 8]), events - len(out))):
            t = min(t + dt.timedelta(seconds=rng.uniform(5, 240)), day_end)
            doc = rng.choice(shown)
            ts = fmt_ts(t)
            rec = {
                "DateCreated": f"/Date({int(t.timestamp() * 1000)})/",
                "SessionId": session_id,
                "DocumentId": doc.id,
                "Url": doc.url,
                "Title": doc.title,
                "DOI": doc.doi,
                "ClinicalAreas": "," + ",".join(doc.areas),
                "Keywords": query,
                "Documents": [d.id for d in shown],
                "event_ts": ts,
                "event_date": day.isoformat(),
                "dedup_key": dedup_key(session_id, doc.id, ts),
            }
            out.append(rec)
            if rng.random() < DUPLICATE_RATE:
                out.append(dict(rec))  # the same click logged twice
    out.sort(key=lambda r: r["event_ts"])
    return out


def write_day(day: dt.date, records: list[dict], out_root: Path, servers: int = 2) -> dict:
    by_server: dict[int, list[dict]] = {i: [] for i in range(servers)}
    for rec in records:
        by_server[server_of(rec["SessionId"], servers)].append(rec)
    summary = {
        "date": day.isoformat(),
        "events": len(records),
        "distinct_dedup_keys": len({r["dedup_key"] for r in records}),
        "servers": {},
    }
    for i, recs in by_server.items():
        folder = out_root / f"server{i}" / "data" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".events.json.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for rec in recs:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        tmp.replace(folder / "events.json")
        summary["servers"][f"server{i}"] = {"path": str(folder / "events.json"), "events": len(recs)}
    return summary


def main(argv: list[str] | None = None) -> int:
    from demo.stack import config

    ap = argparse.ArgumentParser(
        prog="python -m demo.datagen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--date", required=True, help="YYYY-MM-DD")
    ap.add_argument("--events", type=int, default=4000, help="events for the day, both servers together")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=config.state("servers"), help="root holding serverN/data/")
    args = ap.parse_args(argv)
    try:
        day = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"--date {args.date!r}: expected YYYY-MM-DD", file=sys.stderr)
        return 2
    if args.events < 1:
        print("--events must be at least 1", file=sys.stderr)
        return 2
    summary = write_day(day, generate_day(day, args.events, args.seed), args.out)
    print(json.dumps(summary, indent=2))
    return 0
