"""What the alerting tests do to the stack's Prometheus and Alertmanager, and read from the Slack stand-in's
alert webhook: the release's rules with short windows, Alertmanager's waits shortened, the messages it sent.

Production's windows are minutes to a day; a test cannot wait a day. Every duration of the rules'
expressions and `for` is replaced through SHORT_WINDOWS, and a duration missing there fails the test
with its name, so a new rule gets a test window on purpose. docs/monitoring.md computes each alert's
fault-to-message time with production's windows from the same parts.
"""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.request
from dataclasses import dataclass

import yaml
from prometheus_client.parser import text_string_to_metric_families

from demo import api
from demo.stack import config, monitoring

# Production window -> the test's. Each short window still holds several of the stack's 2 s scrapes.
SHORT_WINDOWS = {
    "30s": "3s",  # StatsdExporterDown's `for`: shorter than the heartbeat's, which it holds back
    "1m": "10s",  # `for` of the condition alerts; a subquery's step
    "2m": "20s",  # the heartbeat's rate window (beats every 5 s); AirflowTaskFailedWithoutReport's `for`
    "5m": "30s",  # TripclickNoSuccessfulRun's `for`
    "24h3m": "60s",  # TripclickRunNotStarted: a day without a first task
    "26h": "3m",  # TripclickNoSuccessfulRun's window
    "1h": "30s",  # "in the last hour" of the event alerts: an event is over 30 s later (no message, by the route)
    "12h": "10m",
    "7d": "30m",
}
# Alertmanager's: production waits 30 s before a group's first message and 5 min between its updates.
SHORT_ROUTE = {"group_wait": "1s", "group_interval": "5s"}
DURATION = re.compile(r"(?<![\w.$])(?:\d+(?:ms|[smhdwy]))+(?![\w])")


def shorten(duration: str) -> str:
    if duration not in SHORT_WINDOWS:
        raise KeyError(f"rule duration {duration!r} has no test window: add it to SHORT_WINDOWS")
    return SHORT_WINDOWS[duration]


def short_rules() -> str:
    """The release's rules with every window of their expressions and every `for` shortened."""
    document = yaml.safe_load(monitoring.RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = DURATION.sub(lambda m: shorten(m.group(0)), rule["expr"])
            if "for" in rule:
                rule["for"] = shorten(rule["for"])
    return yaml.safe_dump(document, sort_keys=False)


def short_route() -> dict:
    document = copy.deepcopy(yaml.safe_load(monitoring.ALERTMANAGER.read_text()))
    document["route"].update(SHORT_ROUTE)
    return document


def use_short_windows() -> None:
    monitoring.load_rules(short_rules())
    monitoring.load_alertmanager(short_route())


def use_production_windows() -> None:
    monitoring.load_rules(monitoring.RULES.read_text())
    monitoring.load_alertmanager(yaml.safe_load(monitoring.ALERTMANAGER.read_text()))


@dataclass
class Message:
    received_at: float
    status: str  # FIRING or RESOLVED
    alertname: str
    title: str
    text: str


def messages(since: float) -> list[Message]:
    """What Alertmanager posted to the alert webhook since `since` (the title: `<STATUS>: <alertname> (<dag_id>)`)."""
    found = []
    for m in api.slack_messages(since, path=config.SLACK_ALERTS_PATH):
        for attachment in m["payload"].get("attachments") or []:
            status, _, rest = attachment["title"].partition(": ")
            found.append(Message(m["received_at"], status, rest.split(" ")[0], attachment["title"], attachment["text"]))
    return found


def wait_message(alertname: str, status: str, since: float, timeout: float) -> Message:
    deadline = time.time() + timeout
    while time.time() < deadline:
        hits = [m for m in messages(since) if m.alertname == alertname and m.status == status]
        if hits:
            return hits[0]
        time.sleep(1)
    seen = [m.title for m in messages(since)]
    raise AssertionError(f"no {status} {alertname} within {timeout:.0f}s; the alert webhook got {seen}")


def firing_in_prometheus() -> set[str]:
    """Alert names Prometheus holds as firing now."""
    with urllib.request.urlopen(f"{config.prometheus_url()}/api/v1/alerts", timeout=10) as resp:  # noqa: S310
        alerts = json.loads(resp.read())["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def active_in_alertmanager() -> set[str]:
    with urllib.request.urlopen(f"{config.alertmanager_url()}/api/v2/alerts?active=true", timeout=10) as resp:  # noqa: S310
        return {a["labels"]["alertname"] for a in json.loads(resp.read())}


def wait_quiet(alertnames: set[str], timeout: float) -> None:
    """Until none of these alerts is active: one still firing from an earlier test would swallow the next
    firing of the same alert (Alertmanager sends a group's alerts once, until they resolve)."""
    deadline = time.time() + timeout
    while active := alertnames & (active_in_alertmanager() | firing_in_prometheus()):
        if time.time() > deadline:
            raise AssertionError(f"{sorted(active)} still active after {timeout:.0f}s")
        time.sleep(1)
    # The next flush of each group (group_interval) clears them from the notification log.
    time.sleep(float(SHORT_ROUTE["group_interval"].removesuffix("s")) + 1)


def wait_firing(alertname: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while alertname not in firing_in_prometheus():
        if time.time() > deadline:
            raise AssertionError(f"{alertname} not firing in Prometheus after {timeout:.0f}s")
        time.sleep(1)


def failed_slack_notifications() -> float:
    """Alertmanager's count of Slack notifications it could not deliver (each is tried again)."""
    with urllib.request.urlopen(f"{config.alertmanager_url()}/metrics", timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "alertmanager_notifications_failed"
        for sample in family.samples
        if sample.labels.get("integration") == "slack"
    )
