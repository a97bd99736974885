"""chart/files/monitoring/tripclick-alertmanager.yaml, the route the release ships, checked by Alertmanager's own
amtool: it loads, each alert reaches the receiver the file says, and a file that does not load is named with
its line. A broken rule file is named with its line by promtool the same way."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.conftest import RULES, promtool

ROUTE = RULES.with_name("tripclick-alertmanager.yaml")
# Airflow posts these itself (on_failure_callback, with the log link): the route sends them to no one.
SILENT = {"TripclickTaskFailed"}
EVENTS = {"TripclickRunFailed", "AirflowTaskFailedWithoutReport", "TripclickStageSlow", "TripclickRunSlow"}


def amtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.fail("amtool is missing: run `make system-deps` (Debian package prometheus-alertmanager)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def route_errors(path: Path) -> list[str]:
    """amtool check-config; its message names a bad value, not where it is: the line holding the value is added."""
    done = amtool("check-config", str(path))
    if done.returncode == 0:
        return []
    out = done.stdout + done.stderr
    message = next((line.split("FAILED: ", 1)[1] for line in out.splitlines() if "FAILED: " in line), out.strip())
    line = re.search(r"\byaml: line (\d+)", message)
    if line is None:
        quoted = re.findall(r'"([^"]+)"', message)
        lines = path.read_text().splitlines()
        line_no = next((n for n, text in enumerate(lines, 1) for q in quoted if q in text), None)
        return [f"{path}:{line_no}: {message}" if line_no else f"{path}: {message}"]
    return [f"{path}:{line.group(1)}: {message}"]


def _alert_names() -> list[str]:
    return [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_the_shipped_route_loads():
    assert route_errors(ROUTE) == []


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        ("group_wait: 30s", "group_wait: 30x", 'not a valid duration string: "30x"'),
        ("receiver: none", "receiver: nobody", 'undefined receiver "nobody" used in route'),
    ],
)
def test_a_route_that_does_not_load_is_named_by_file_and_line(tmp_path, good, bad, message):
    lines = ROUTE.read_text().splitlines()
    line_no = next(n for n, text in enumerate(lines, 1) if good in text)
    broken = tmp_path / ROUTE.name
    broken.write_text(ROUTE.read_text().replace(good, bad, 1))
    assert route_errors(broken) == [f"{broken}:{line_no}: {message}"]


@pytest.mark.parametrize("alert", _alert_names())
def test_each_alert_reaches_its_receiver(alert):
    done = amtool(
        "config", "routes", "test", f"--config.file={ROUTE}", f"alertname={alert}", "dag_id=tripclick_daily_pipeline"
    )
    assert done.returncode == 0, done.stderr
    expected = "none" if alert in SILENT else "slack-events" if alert in EVENTS else "slack"
    assert done.stdout.strip() == expected


def test_receivers_send_to_a_webhook_read_from_a_file():
    """The webhook URL is a secret: never in the file, always from api_url_file."""
    receivers = yaml.safe_load(ROUTE.read_text())["receivers"]
    slack = [c for r in receivers for c in r.get("slack_configs") or []]
    assert slack, "no Slack receiver"
    assert all("api_url" not in c and c["api_url_file"] for c in slack)
    assert {r["name"]: [c["send_resolved"] for c in r.get("slack_configs") or []] for r in receivers} == {
        "slack": [True],
        "slack-events": [False],
        "none": [],
    }


def test_a_rule_file_that_does_not_load_is_named_by_file_and_line(tmp_path):
    broken = tmp_path / RULES.name
    text = RULES.read_text()
    good = "expr: max(airflow_dag_processing_import_errors) > 0"
    line_no = next(n for n, line in enumerate(text.splitlines(), 1) if good in line)
    broken.write_text(text.replace(good, good.removesuffix(" 0"), 1))
    with pytest.raises(pytest.fail.Exception) as failed:
        promtool("check", "rules", str(broken))
    assert f"{broken}: {line_no}:" in str(failed.value)
