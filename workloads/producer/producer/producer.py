"""Replay one day of TripClick click logs.

    python -m producer.producer --file /app/data/date=YYYY-MM-DD/events.json --mode realtime|batch
                                --topic tripclick_raw_logs

Transports:
  Kafka    (KAFKA_BROKERS=host:9092,...): one message per event, key SessionId, value the JSON record.
  landing  (LANDING_DIR=/app/landing): JSON-lines files in LANDING_DIR/event_date=YYYY-MM-DD/, each written
           under a hidden temporary name and renamed into place, so a file-stream reader never sees half a file.
Modes: `realtime` replays at the pace of the events' timestamps divided by TRIPCLICK_REPLAY_SPEED
(default 1 = real time); `batch` sends everything at once.
The whole file is read and validated before the first event is sent: a bad file sends nothing.
Exit codes: 0 done, 2 bad arguments or environment, 3 missing or unreadable input, 4 transport failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

REQUIRED = ("SessionId", "DocumentId", "event_ts", "event_date", "dedup_key")
FLUSH_SECONDS = 1.0
MAX_LINES_PER_FILE = 5000


class ProducerError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def log(msg: str) -> None:
    print(f"{dt.datetime.now(dt.UTC).strftime('%H:%M:%S')} producer: {msg}", flush=True)


def parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def load(path: Path) -> list[dict]:
    if not path.is_file():
        folder = path.parent.parent
        hint = ""
        if folder.is_dir():
            days = sorted(p.name for p in folder.glob("date=*"))[-5:]
            hint = f" Days present in {folder}: {', '.join(days) or 'none'}."
        raise ProducerError(
            3,
            f"input file {path} does not exist.{hint} The server's data folder (mounted at /app/data) must "
            f"hold date=YYYY-MM-DD/events.json for the run's date.",
        )
    events = []
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ProducerError(
                        3, f"{path} line {n}: not valid JSON ({exc.msg}); fix or regenerate the file"
                    ) from None
                if not isinstance(rec, dict):
                    raise ProducerError(3, f"{path} line {n}: expected a JSON object, got {type(rec).__name__}")
                missing = [k for k in REQUIRED if k not in rec]
                if missing:
                    raise ProducerError(3, f"{path} line {n}: missing field(s) {', '.join(missing)}")
                try:
                    rec["_ts"] = parse_ts(rec["event_ts"])
                except (TypeError, ValueError):
                    raise ProducerError(3, f"{path} line {n}: event_ts {rec['event_ts']!r} is not ISO-8601") from None
                events.append(rec)
    except UnicodeDecodeError as exc:
        raise ProducerError(3, f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise ProducerError(3, f"cannot read {path}: {exc}") from None
    if not events:
        raise ProducerError(3, f"{path} holds no events")
    events.sort(key=lambda r: r["_ts"])
    return events


class LandingSink:
    def __init__(self, root: Path, day: str) -> None:
        if not root.is_dir():
            raise ProducerError(2, f"LANDING_DIR {root} is not a directory: mount the landing folder there")
        self.dir = root / f"event_date={day}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"{socket.gethostname()}-{time.time_ns()}"
        self.seq = 0
        self.files = 0

    def send(self, batch: list[dict]) -> None:
        if not batch:
            return
        name = f"{self.prefix}-{self.seq:06d}.json"
        self.seq += 1
        tmp = self.dir / f".{name}.tmp"  # Spark's file source skips names starting with "."
        try:
            with tmp.open("w", encoding="utf-8") as f:
                for rec in batch:
                    f.write(json.dumps({k: v for k, v in rec.items() if k != "_ts"}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.dir / name)
        except OSError as exc:
            # A half-written temporary file is hidden from the stream; remove it so it does not fill the disk more.
            tmp.unlink(missing_ok=True)
            cause = errno.errorcode.get(exc.errno or 0, "error")
            raise ProducerError(
                4, f"cannot write landing file {self.dir / name}: {exc.strerror} ({cause}) in {self.dir}"
            ) from None
        self.files += 1

    def close(self) -> str:
        return f"{self.files} file(s) in {self.dir}"


class KafkaSink:
    def __init__(self, brokers: str, topic: str) -> None:
        try:
            from kafka import KafkaProducer
            from kafka.errors import KafkaError
        except ImportError as exc:
            raise ProducerError(2, f"Kafka transport needs the kafka-python package: {exc}") from None
        self.KafkaError = KafkaError
        self.topic = topic
        self.count = 0
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=[b.strip() for b in brokers.split(",") if b.strip()],
                key_serializer=str.encode,
                value_serializer=lambda v: json.dumps(v, ensure_ascii=False).encode(),
                acks="all",
                linger_ms=50,
            )
        except KafkaError as exc:
            raise ProducerError(4, f"cannot connect to Kafka brokers {brokers}: {exc}") from None

    def send(self, batch: list[dict]) -> None:
        try:
            for rec in batch:
                value = {k: v for k, v in rec.items() if k != "_ts"}
                self.producer.send(self.topic, key=str(rec["SessionId"]), value=value)
                self.count += 1
            self.producer.flush()
        except self.KafkaError as exc:
            raise ProducerError(4, f"Kafka send to {self.topic} failed: {exc}") from None

    def close(self) -> str:
        self.producer.close()
        return f"{self.count} message(s) to topic {self.topic}"


def replay(events: list[dict], sink, mode: str, speed: float) -> None:
    if mode == "batch":
        for i in range(0, len(events), MAX_LINES_PER_FILE):
            sink.send(events[i : i + MAX_LINES_PER_FILE])
        return
    start_wall = time.monotonic()
    first_ts = events[0]["_ts"]
    batch: list[dict] = []
    last_flush = next_report = start_wall
    for n, rec in enumerate(events, 1):
        due = start_wall + (rec["_ts"] - first_ts) / speed
        while True:
            now = time.monotonic()
            # Pending events go out at least every FLUSH_SECONDS, so the stream sees them close to their time.
            if batch and now - last_flush >= FLUSH_SECONDS:
                sink.send(batch)
                batch, last_flush = [], now
            if now >= due:
                break
            time.sleep(min(due - now, FLUSH_SECONDS))
        batch.append(rec)
        if len(batch) >= MAX_LINES_PER_FILE:
            sink.send(batch)
            batch, last_flush = [], time.monotonic()
        if time.monotonic() - next_report >= 10:
            log(f"{n}/{len(events)} events sent (event time {rec['event_ts']})")
            next_report = time.monotonic()
    sink.send(batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m producer.producer", description="Replay one day of TripClick logs")
    ap.add_argument("--file", required=True, help="/app/data/date=YYYY-MM-DD/events.json")
    ap.add_argument("--mode", required=True, choices=("realtime", "batch"))
    ap.add_argument("--topic", default="tripclick_raw_logs")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    try:
        speed_raw = os.environ.get("TRIPCLICK_REPLAY_SPEED", "1")
        try:
            speed = float(speed_raw)
            if not speed > 0:
                raise ValueError
        except ValueError:
            raise ProducerError(
                2, f"TRIPCLICK_REPLAY_SPEED={speed_raw!r}: expected a number > 0 (1 = real time)"
            ) from None
        path = Path(args.file)
        m = re.search(r"date=(\d{4}-\d{2}-\d{2})", str(path))
        if not m:
            raise ProducerError(2, f"--file {path}: expected a path like /app/data/date=YYYY-MM-DD/events.json")
        day = m.group(1)
        landing = os.environ.get("LANDING_DIR", "").strip()
        brokers = os.environ.get("KAFKA_BROKERS", "").strip()
        if not landing and not brokers:
            raise ProducerError(
                2, "no transport: set KAFKA_BROKERS=host:port,... (or LANDING_DIR for the landing transport)"
            )
        events = load(path)
        wrong = sum(1 for r in events if r["event_date"] != day)
        if wrong:
            raise ProducerError(3, f"{path}: {wrong} event(s) have an event_date other than {day}")
        sink = LandingSink(Path(landing), day) if landing else KafkaSink(brokers, args.topic)
        transport = "landing" if landing else "kafka"
        log(
            f"{len(events)} events for {day} from {path}; mode {args.mode}, transport {transport}"
            + (f", replay speed x{speed:g}" if args.mode == "realtime" else "")
        )
        t0 = time.monotonic()
        replay(events, sink, args.mode, speed)
        log(f"done: {len(events)} events, {sink.close()}, {time.monotonic() - t0:.1f}s")
        return 0
    except ProducerError as exc:
        print(f"producer: ERROR: {exc}", file=sys.stderr, flush=True)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
