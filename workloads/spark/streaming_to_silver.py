"""streaming_to_silver: the day's raw events -> silver parquet, deduplicated on dedup_key.

    spark-submit streaming_to_silver.py --date D --silver-path ROOT/silver --bronze-path ROOT/bronze
        (--source landing --landing-path DIR | --source kafka --kafka-brokers B --topic T)
        [--max-runtime-seconds N] [--watermark-delay "10 minutes"] [--trigger-seconds 5]

Started together with the producers, it streams for --max-runtime-seconds, then drains whatever has
arrived and stops. Each run rebuilds silver/event_date=D from scratch (its checkpoint and partition are
cleared first), so a retry, a rerun or a producer that re-sent events all end with the same silver rows.
Landing transport: JSON-lines files in DIR/event_date=D/ (the producers rename complete files into place).
Kafka transport: the topic from the earliest offset, keeping events of day D (not testable on the demo
machine: no broker can run there).
"""

from __future__ import annotations

import argparse
import sys
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql import types as T  # noqa: N812 - the PySpark convention

RAW_SCHEMA = T.StructType(
    [
        T.StructField("DateCreated", T.StringType()),
        T.StructField("SessionId", T.StringType()),
        T.StructField("DocumentId", T.LongType()),
        T.StructField("Url", T.StringType()),
        T.StructField("Title", T.StringType()),
        T.StructField("DOI", T.StringType()),
        T.StructField("ClinicalAreas", T.StringType()),
        T.StructField("Keywords", T.StringType()),
        T.StructField("Documents", T.ArrayType(T.LongType())),
        T.StructField("event_ts", T.StringType()),
        T.StructField("event_date", T.StringType()),
        T.StructField("dedup_key", T.StringType()),
    ]
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="streaming_to_silver.py")
    ap.add_argument("--date", required=True)
    ap.add_argument("--silver-path", required=True)
    ap.add_argument("--bronze-path", required=True, help="accepted for a uniform interface; unused here")
    ap.add_argument("--source", choices=("landing", "kafka"), required=True)
    ap.add_argument("--landing-path")
    ap.add_argument("--kafka-brokers")
    ap.add_argument("--topic", default="tripclick_raw_logs")
    ap.add_argument("--starting-offsets", default="earliest", help="Kafka startingOffsets")
    ap.add_argument("--max-runtime-seconds", type=int, default=3900)
    ap.add_argument("--watermark-delay", default="10 minutes")
    ap.add_argument("--trigger-seconds", type=int, default=5)
    ap.add_argument("--checkpoint-path", help="default: <silver>/_checkpoints/streaming_to_silver/event_date=D")
    args = ap.parse_args(argv)
    if args.source == "landing" and not args.landing_path:
        ap.error("--source landing needs --landing-path DIR")
    if args.source == "kafka" and not args.kafka_brokers:
        ap.error("--source kafka needs --kafka-brokers host:port[,host:port]")
    if args.max_runtime_seconds < 1:
        ap.error("--max-runtime-seconds must be at least 1")
    return args


def default_checkpoint(silver_path: str, day: str) -> str:
    """Where the day's stream keeps its progress unless --checkpoint-path says otherwise."""
    return f"{silver_path.rstrip('/')}/_checkpoints/streaming_to_silver/event_date={day}"


def spark_session() -> SparkSession:
    """The session every application of this folder runs in (driver side only): UTC, warnings and up."""
    # The application name comes from spark-submit --name (the DAG sets tripclick-<job>-<date>).
    spark = SparkSession.builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def hadoop_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p, p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def to_silver(raw: DataFrame, day: str) -> DataFrame:
    """Typed, cleaned events of day D (the event_date partition column lives in the folder name)."""
    areas = F.filter(F.transform(F.split(F.col("ClinicalAreas"), ","), lambda a: F.trim(a)), lambda a: a != "")
    millis = F.regexp_extract(F.col("DateCreated"), r"/Date\((-?\d+)\)/", 1)
    return (
        raw.where(F.col("event_date") == day)
        .where(F.col("dedup_key").isNotNull() & F.col("SessionId").isNotNull())
        .select(
            F.col("dedup_key"),
            F.col("SessionId").alias("session_id"),
            F.col("DocumentId").alias("document_id"),
            F.to_timestamp(F.col("event_ts")).alias("event_time"),
            F.when(millis != "", F.timestamp_millis(millis.cast("long"))).alias("date_created"),
            F.col("Url").alias("url"),
            F.col("Title").alias("title"),
            F.col("DOI").alias("doi"),
            areas.alias("clinical_areas"),
            F.col("Keywords").alias("keywords"),
            F.col("Documents").alias("documents"),
        )
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    day = args.date
    spark = spark_session()
    target = f"{args.silver_path.rstrip('/')}/event_date={day}"
    checkpoint = args.checkpoint_path or default_checkpoint(args.silver_path, day)
    for path in (target, checkpoint):
        p, fs = hadoop_path(spark, path)
        if fs.exists(p):
            fs.delete(p, True)
            print(f"streaming_to_silver: cleared {path} (each run rebuilds the day)", flush=True)

    if args.source == "landing":
        source_dir = f"{args.landing_path.rstrip('/')}/event_date={day}"
        p, fs = hadoop_path(spark, source_dir)
        fs.mkdirs(p)  # the stream starts before the first file lands
        raw = spark.readStream.schema(RAW_SCHEMA).option("maxFilesPerTrigger", 200).json(source_dir)
        print(f"streaming_to_silver: reading landing files in {source_dir}", flush=True)
    else:
        value = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.kafka_brokers)
            .option("subscribe", args.topic)
            .option("startingOffsets", args.starting_offsets)
            .option("failOnDataLoss", "false")
            .load()
        )
        raw = value.select(F.from_json(F.col("value").cast("string"), RAW_SCHEMA).alias("r")).select("r.*")
        print(f"streaming_to_silver: reading Kafka topic {args.topic} at {args.kafka_brokers}", flush=True)

    silver = (
        to_silver(raw, day)
        .withWatermark("event_time", args.watermark_delay)
        .dropDuplicatesWithinWatermark(["dedup_key"])
    )
    query = (
        silver.writeStream.format("parquet")
        .option("path", target)
        .option("checkpointLocation", checkpoint)
        .outputMode("append")
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .queryName(f"silver_{day.replace('-', '_')}")
        .start()
    )
    deadline = time.monotonic() + args.max_runtime_seconds
    total_in = 0
    seen_batches: set[int] = set()
    while time.monotonic() < deadline:
        if query.awaitTermination(timeout=min(10.0, max(0.1, deadline - time.monotonic()))):
            break  # the query ended on its own: awaitTermination re-raises its error, if any
        for prog in query.recentProgress:
            if prog["batchId"] not in seen_batches:
                seen_batches.add(prog["batchId"])
                if prog["numInputRows"]:
                    total_in += prog["numInputRows"]
                    print(
                        f"streaming_to_silver: batch {prog['batchId']}: {prog['numInputRows']} rows in "
                        f"({total_in} so far)",
                        flush=True,
                    )
    # Bounded run time reached: take in whatever has landed, then stop cleanly.
    query.processAllAvailable()
    query.stop()
    if query.exception():
        print(f"streaming_to_silver: query failed: {query.exception()}", file=sys.stderr)
        return 1
    try:
        rows = spark.read.parquet(target).count()
    except Exception:  # noqa: BLE001 - no file written: nothing arrived for the day
        rows = 0
    print(f"streaming_to_silver: silver {target}: {rows} rows for {day}", flush=True)
    if rows == 0:
        print(f"streaming_to_silver: WARNING: no event of {day} arrived within {args.max_runtime_seconds}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
