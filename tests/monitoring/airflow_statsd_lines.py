"""The StatsD lines Airflow itself sends for a list of metric calls, captured on a loopback UDP socket.

Runs in its own process (Airflow's stats module is a process-wide singleton configured once):

    python tests/monitoring/airflow_statsd_lines.py < calls.json > lines.json

stdin: {"metrics": {<[metrics] options of airflow.cfg>}, "calls": [{"side": "core"|"sdk",
"kind": "incr"|"gauge"|"timing", "name": str, "value": number (timing: seconds as a timedelta, as
the scheduler sends them) or "value_ms" (timing: a number of milliseconds, as the task runner sends
them), "tags": {...}}]}.
stdout: a JSON list with the lines of each call, in order. The configuration goes through Airflow's
own factory (`get_stats_factory`, as the scheduler, dag-processor and task runner do), and the lines
through the real `statsd` client, so legacy names, tag handling and the wire format are Airflow's.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import timedelta

MARKER = b"--end-of-call--"


def main() -> int:
    request = json.load(sys.stdin)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    for key, value in request["metrics"].items():
        os.environ[f"AIRFLOW__METRICS__{key.upper()}"] = str(value)
    os.environ["AIRFLOW__METRICS__STATSD_HOST"] = "127.0.0.1"
    os.environ["AIRFLOW__METRICS__STATSD_PORT"] = str(receiver.getsockname()[1])

    from airflow._shared.observability.metrics import stats as core_stats
    from airflow.configuration import conf
    from airflow.observability.metrics import stats_utils as core_utils
    from airflow.sdk._shared.observability.metrics import stats as sdk_stats
    from airflow.sdk.observability.metrics import stats_utils as sdk_utils

    legacy = conf.getboolean("metrics", "legacy_names_on")
    core_stats.initialize(factory=core_utils.get_stats_factory(), export_legacy_names=legacy)
    sdk_stats.initialize(factory=sdk_utils.get_stats_factory(), export_legacy_names=legacy)
    sides = {"core": core_stats, "sdk": sdk_stats}

    # A marker after each call splits the datagrams per call; loopback delivers them in send order.
    marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = []
    for call in request["calls"]:
        module = sides[call.get("side", "core")]
        tags = call.get("tags") or None
        if call["kind"] == "incr":
            module.incr(call["name"], tags=tags)
        elif call["kind"] == "gauge":
            module.gauge(call["name"], call.get("value", 1), tags=tags)
        elif call["kind"] == "timing" and "value_ms" in call:
            module.timing(call["name"], call["value_ms"], tags=tags)
        elif call["kind"] == "timing":
            module.timing(call["name"], timedelta(seconds=call.get("value", 1)), tags=tags)
        else:
            raise SystemExit(f"unknown call kind {call['kind']!r}: expected incr, gauge or timing")
        marker.sendto(MARKER, receiver.getsockname())
        lines = []
        while (data := receiver.recv(65535)) != MARKER:
            lines.append(data.decode())
        out.append(lines)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
