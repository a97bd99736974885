"""The Grafana dashboard's queries, run against the stack's Prometheus over a failed and a good day: each one
returns series, as its panel would show them over that time. Grafana itself is not needed for that: it only sends these
queries (with its variables substituted) to Prometheus' query API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from demo.stack import config
from tests.e2e.test_statsd import EXEMPT
from tests.monitoring.conftest import DASHBOARD, KUBELET_SERIES
from tests.monitoring.promql import selectors
from tests.monitoring.test_dashboard import _queries

SCRAPED_WITHIN_S = 60


def query_range(expr: str, start: float, end: float) -> list[dict]:
    """The query over [start, end], as a panel over that time range asks it."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "5"}
    url = f"{config.prometheus_url()}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def is_unreported_failures(expr: str) -> bool:
    """The failed tries no task reported (a pod killed): scheduler failures beyond the tasks' own, kept when
    above zero. Every failure of these runs is reported by its task, so that query is rightly empty."""
    return "airflow_ti_failures" in expr and "airflow_task_finish_total" in expr and expr.rstrip().endswith("> 0")


def test_every_panel_query_returns_series(daemon_down_day, good_day):
    assert (daemon_down_day.state, good_day[0].state) == ("failed", "success")
    queries = _queries(json.loads(DASHBOARD.read_text()))
    # The control-plane panels read the kubelet's cAdvisor, and a few series no demo run sends (test_statsd).
    checked = [
        (title, expr)
        for title, expr in queries
        if not {selector.name for selector in selectors(expr)} & (KUBELET_SERIES | set(EXEMPT))
        and not is_unreported_failures(expr)
    ]
    assert len(checked) > len(queries) / 2, "most panels read what the runs send"
    # Over the two runs, as a panel showing that time shows them (a "running now" panel is empty between runs).
    # The runs' last metrics leave Airflow as the run ends and reach Prometheus at its next scrape.
    start = min(daemon_down_day.started, good_day[0].started)
    deadline = time.monotonic() + SCRAPED_WITHIN_S
    while empty := [f"{title}: {expr}" for title, expr in checked if not query_range(expr, start, time.time())]:
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    assert empty == []
