"""batch_to_bronze: every landed record of day D, as received, with where and when it came from.

    spark-submit batch_to_bronze.py --date D --silver-path ROOT/silver --bronze-path ROOT/bronze
        (--source landing --landing-path DIR | --source kafka --kafka-brokers B --topic T)

Bronze keeps duplicates and re-sent events (silver is where they are removed). The partition
bronze/event_date=D is overwritten as a whole, so a rerun replaces the day.
Silver completion: the stream stops after its bounded run time, so events a retried producer re-sent
after that never reached silver. Bronze sees everything that landed; if silver lacks any of the day's
dedup keys, silver/event_date=D is rewritten from the same records (deduplicated on dedup_key), so gold
never reads a silver partition that misses part of the day.
Landing metadata: source_file, source_file_modified, ingest_time. Kafka metadata: kafka_topic,
kafka_partition, kafka_offset, kafka_timestamp, kafka_key, ingest_time (Kafka is not testable on the
demo machine: no broker can run there).
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

# The driver runs this file with its folder on sys.path (client mode), so the sibling module imports.
from streaming_to_silver import RAW_SCHEMA, hadoop_path, spark_session, to_silver


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="batch_to_bronze.py")
    ap.add_argument("--date", required=True)
    ap.add_argument("--silver-path", required=True, help="completed from the landed records if it misses any")
    ap.add_argument("--bronze-path", required=True)
    ap.add_argument("--source", choices=("landing", "kafka"), required=True)
    ap.add_argument("--landing-path")
    ap.add_argument("--kafka-brokers")
    ap.add_argument("--topic", default="tripclick_raw_logs")
    args = ap.parse_args(argv)
    if args.source == "landing" and not args.landing_path:
        ap.error("--source landing needs --landing-path DIR")
    if args.source == "kafka" and not args.kafka_brokers:
        ap.error("--source kafka needs --kafka-brokers host:port[,host:port]")
    return args


def complete_silver(spark: SparkSession, records, day: str, silver_target: str) -> None:
    """Rewrite the day's silver from the landed records if it lacks any of their dedup keys."""
    expected = to_silver(records, day).dropDuplicates(["dedup_key"])
    p, fs = hadoop_path(spark, silver_target)
    if fs.exists(p):
        present = spark.read.parquet(silver_target).select("dedup_key").distinct()
        missing = expected.join(present, "dedup_key", "left_anti").count()
        extra = present.join(expected.select("dedup_key"), "dedup_key", "left_anti").count()
    else:
        missing, extra = expected.count(), 0
    if not missing and not extra:
        print(f"batch_to_bronze: silver {silver_target} holds every event of {day}", flush=True)
        return
    # `expected` never reads the old silver files, so overwriting them in place is safe.
    expected.write.mode("overwrite").parquet(silver_target)
    rows = spark.read.parquet(silver_target).count()
    print(
        f"batch_to_bronze: silver {silver_target} lacked {missing} and had {extra} unexpected event(s) of {day} "
        f"(the stream stopped before every event arrived, e.g. a producer retried after it); rewrote it "
        f"from the landed records: {rows} rows",
        flush=True,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    day = args.date
    spark = spark_session()
    target = f"{args.bronze_path.rstrip('/')}/event_date={day}"
    if args.source == "landing":
        source_dir = f"{args.landing_path.rstrip('/')}/event_date={day}"
        p, fs = hadoop_path(spark, source_dir)
        if not fs.exists(p) or not [s for s in fs.listStatus(p) if not s.getPath().getName().startswith((".", "_"))]:
            print(
                f"batch_to_bronze: ERROR: no landed file for {day} in {source_dir}: did the producers run "
                f"for this date?",
                file=sys.stderr,
            )
            return 2
        raw = spark.read.schema(RAW_SCHEMA).json(source_dir)
        records = raw
        bronze = raw.select(
            "*",
            F.col("_metadata.file_path").alias("source_file"),
            F.col("_metadata.file_modification_time").alias("source_file_modified"),
        )
    else:
        msgs = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", args.kafka_brokers)
            .option("subscribe", args.topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
        )
        bronze = msgs.select(
            F.from_json(F.col("value").cast("string"), RAW_SCHEMA).alias("r"),
            F.col("topic").alias("kafka_topic"),
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
            F.col("key").cast("string").alias("kafka_key"),
        ).select("r.*", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key")
        records = bronze.select(*RAW_SCHEMA.fieldNames())
    bronze = (
        bronze.where(F.col("event_date") == day)
        .drop("event_date")  # lives in the partition folder name
        .withColumn("ingest_time", F.current_timestamp())
    )
    bronze.write.mode("overwrite").parquet(target)
    rows = spark.read.parquet(target).count()
    print(f"batch_to_bronze: bronze {target}: {rows} rows for {day}", flush=True)
    complete_silver(spark, records, day, f"{args.silver_path.rstrip('/')}/event_date={day}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
