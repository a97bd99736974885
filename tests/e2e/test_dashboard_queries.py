"""The Grafana dashboard's queries, run against the stack's Prometheus after a failed and a good day: each one
returns series, as its panel would show them. Grafana itself is not needed for that: it only sends these
queries (with its variables substituted) to Prometheus' query API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from demo.stack import config
from tests.e2e.test_statsd import EXEMPT
from tests.monitoring.conftest import DASHBOARD, KUBELET_SERIES
from tests.monitoring.promql import selectors
from tests.monitoring.test_dashboard import _queries


def query(expr: str) -> list[dict]:
    url = f"{config.prometheus_url()}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_every_panel_query_returns_series(daemon_down_day, good_day):
    assert (daemon_down_day.state, good_day[0].state) == ("failed", "success")
    empty, left_out = [], []
    for title, expr in _queries(json.loads(DASHBOARD.read_text())):
        names = {selector.name for selector in selectors(expr)}
        # The control-plane panels read the kubelet's cAdvisor, and a few series no demo run sends (test_statsd).
        if names & (KUBELET_SERIES | set(EXEMPT)):
            left_out.append(title)
            continue
        if not query(expr):
            empty.append(f"{title}: {expr}")
    assert empty == []
    assert len(left_out) < len(_queries(json.loads(DASHBOARD.read_text()))) / 2, left_out
