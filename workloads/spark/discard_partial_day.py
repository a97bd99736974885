"""discard_partial_day: delete what a failed day left half-written, so each layer is exact or absent.

    spark-submit discard_partial_day.py --date D --silver-path ROOT/silver --bronze-path ROOT/bronze
        --layer silver [--layer bronze] [--checkpoint-path P]

`silver` deletes silver/event_date=D and the streaming checkpoint of the day (default: the one
streaming_to_silver uses); `bronze` deletes bronze/event_date=D. A missing path is not an error: a
plain rerun of the date writes every layer again from scratch. Gold needs nothing here: etl_to_gold
replaces a day in one transaction. Every deletion is printed with its path.
"""

from __future__ import annotations

import argparse
import sys

# The driver runs this file with its folder on sys.path (client mode), so the sibling module imports.
from streaming_to_silver import default_checkpoint, hadoop_path, spark_session


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="discard_partial_day.py")
    ap.add_argument("--date", required=True)
    ap.add_argument("--silver-path", required=True)
    ap.add_argument("--bronze-path", required=True)
    ap.add_argument("--layer", action="append", choices=("silver", "bronze"), required=True, dest="layers")
    ap.add_argument("--checkpoint-path", help="default: the streaming checkpoint of the day under --silver-path")
    return ap.parse_args(argv)


def targets(args: argparse.Namespace) -> list[str]:
    day = args.date
    paths = []
    if "silver" in args.layers:
        paths += [
            f"{args.silver_path.rstrip('/')}/event_date={day}",
            args.checkpoint_path or default_checkpoint(args.silver_path, day),
        ]
    if "bronze" in args.layers:
        paths.append(f"{args.bronze_path.rstrip('/')}/event_date={day}")
    return paths


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    spark = spark_session()
    for path in targets(args):
        p, fs = hadoop_path(spark, path)
        if not fs.exists(p):
            print(f"discard_partial_day: {path}: absent, nothing to delete", flush=True)
            continue
        if not fs.delete(p, True):
            print(f"discard_partial_day: ERROR: could not delete {path}", file=sys.stderr, flush=True)
            return 1
        print(f"discard_partial_day: deleted {path}", flush=True)
    print(f"discard_partial_day: {', '.join(args.layers)} of {args.date} absent; a rerun of the date rewrites them")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
