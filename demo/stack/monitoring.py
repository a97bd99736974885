"""The stack's alerting path, production's parts end to end: Airflow's StatsD lines, the statsd exporter with
values/base.yaml's mappings, Prometheus with the rules the release ships, Alertmanager with the route the
release ships, the Slack stand-in.

The exporter is the real statsd_exporter, built from its Go module at the tag of the image the release runs
(values/base.yaml, airflow.images.statsd.tag); Prometheus and Alertmanager are Debian's. Their files live
under .state/demo/monitoring/, where the end-to-end tests swap in rules with short windows and reload.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import config, proc, values
from .proc import StackError
from .services import Service, clean_env, http_get

EXPORTER_MODULE = "github.com/prometheus/statsd_exporter"
MONITORING_FILES = config.REPO / "chart" / "files" / "monitoring"
RULES = MONITORING_FILES / "tripclick-alerts.rules.yaml"
ALERTMANAGER = MONITORING_FILES / "tripclick-alertmanager.yaml"
PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
# Seconds. Production scrapes and evaluates every 30 s (docs/monitoring.md); the stack's runs last about a
# minute, so it looks every 2 s. Rule windows and Alertmanager's waits stay production's unless a test swaps them.
INTERVAL = "2s"
# Built binaries are shared by every stack and by the monitoring tests, whatever TRIPCLICK_DEMO_STATE says.
BIN_DIR = config.REPO / ".state" / "bin"


def exporter_version() -> str:
    """The statsd_exporter tag the release runs: values/base.yaml pins the image, the stack builds the same."""
    tag = (values.airflow_values().get("images") or {}).get("statsd", {}).get("tag")
    if not tag:
        raise StackError(f"{values.BASE}: airflow.images.statsd.tag is not set; pin the exporter's image tag there")
    return str(tag)


def exporter_binary() -> Path:
    """statsd_exporter at exporter_version(), built once with `go install` from the Go module proxy."""
    version = exporter_version()
    binary = BIN_DIR / f"statsd_exporter-{version}"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise StackError("go not found: the statsd exporter is built from its Go module; run `make system-deps`")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    # One build at a time: the stack and the monitoring tests may both want it on a fresh checkout.
    with open(BIN_DIR / ".statsd_exporter.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(dir=BIN_DIR) as gobin:
            env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
            # The version the exporter reports in statsd_exporter_build_info, as its release builds stamp it.
            ldflags = f"-X github.com/prometheus/common/version.Version={version.removeprefix('v')}"
            log = proc.log_path("statsd-exporter-build")
            with open(log, "wb") as out:
                done = subprocess.run(
                    [go, "install", "-ldflags", ldflags, f"{EXPORTER_MODULE}@{version}"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1200, check=False,
                )  # fmt: skip
            if done.returncode:
                raise StackError(f"building {EXPORTER_MODULE}@{version} failed.\n--- {log} ---\n{proc.tail(log)}")
            os.replace(Path(gobin) / "statsd_exporter", binary)
    return binary


def mapping_document(statsd: dict[str, Any]) -> dict[str, Any]:
    """mappings.yml as the official chart's statsd ConfigMap builds it (templates/configmaps/statsd-configmap.yaml)
    from the chart's `statsd` values."""
    if not statsd.get("overrideMappings"):
        raise ValueError("airflow.statsd.overrideMappings is empty: the chart would use its own mappings")
    document: dict[str, Any] = {"mappings": statsd["overrideMappings"]}
    ttl = (statsd.get("cache") or {}).get("ttl")
    if ttl:
        document["defaults"] = {"ttl": ttl}
    return document


def monitoring_dir(*parts: str) -> Path:
    return config.state("monitoring", *parts)


def rules_file() -> Path:
    """The rules Prometheus loads: a copy of the release's file, which a test may replace and reload."""
    return monitoring_dir("rules", RULES.name)


def alertmanager_file() -> Path:
    return monitoring_dir("alertmanager.yml")


def alertmanager_config(source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The release's Alertmanager file (or `source`), every Slack receiver pointed at the stand-in's alert
    webhook through a file, as production points it at a Secret's."""
    document = yaml.safe_load(ALERTMANAGER.read_text()) if source is None else source
    url_file = monitoring_dir("slack-webhook-url")
    url_file.parent.mkdir(parents=True, exist_ok=True)
    url_file.write_text(config.slack_alerts_url())
    for receiver in document.get("receivers") or []:
        for slack in receiver.get("slack_configs") or []:
            slack["api_url_file"] = str(url_file)
    return document


def reload(url: str) -> None:
    """POST /-/reload (Prometheus with --web.enable-lifecycle, Alertmanager): a bad file keeps the old one and
    answers 500 with the reason."""
    request = urllib.request.Request(f"{url}/-/reload", method="POST")  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass
    except urllib.error.HTTPError as exc:
        raise StackError(f"{url}/-/reload answered {exc.code}: {exc.read().decode(errors='replace')}") from exc


def load_rules(text: str) -> None:
    """Give Prometheus these rules instead of the ones it has."""
    rules_file().write_text(text)
    reload(config.prometheus_url())


def load_alertmanager(document: dict[str, Any]) -> None:
    alertmanager_file().write_text(yaml.safe_dump(alertmanager_config(document), sort_keys=False))
    reload(config.alertmanager_url())


class StatsdExporter(Service):
    name = "statsd-exporter"
    marker = "statsd_exporter"
    start_timeout = 30.0

    def port(self) -> int:
        return config.PORTS["statsd_exporter_web"]

    def prepare(self) -> None:
        mappings = monitoring_dir("statsd-mappings.yml")
        mappings.parent.mkdir(parents=True, exist_ok=True)
        mappings.write_text(yaml.safe_dump(mapping_document(values.airflow_values()["statsd"]), sort_keys=False))
        binary = exporter_binary()
        done = subprocess.run(
            [str(binary), f"--statsd.mapping-config={mappings}", "--check-config"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode:
            raise StackError(
                f"statsd_exporter refuses values/base.yaml's mappings ({mappings}):\n{done.stderr[-2000:]}"
            )

    def launch(self) -> int:
        cmd = [
            str(exporter_binary()),
            f"--web.listen-address={config.HOST}:{self.port()}",
            f"--statsd.listen-udp={config.HOST}:{config.PORTS['statsd_exporter']}",
            "--statsd.listen-tcp=",
            f"--statsd.mapping-config={monitoring_dir('statsd-mappings.yml')}",
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.STATE)

    def healthy(self) -> bool:
        return http_get(f"http://{config.HOST}:{self.port()}/-/healthy")[0] == 200

    def describe(self) -> str:
        return f"http://{config.HOST}:{self.port()}/metrics (StatsD in on udp://{config.HOST}:{config.PORTS['statsd_exporter']})"


class Prometheus(Service):
    name = "prometheus"
    marker = "prometheus"
    start_timeout = 60.0

    def port(self) -> int:
        return config.PORTS["prometheus"]

    def prepare(self) -> None:
        rules_file().parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RULES, rules_file())
        document = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [str(rules_file())],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"{config.HOST}:{config.PORTS['alertmanager']}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": "tripclick-statsd",
                    "static_configs": [{"targets": [f"{config.HOST}:{config.PORTS['statsd_exporter_web']}"]}],
                }
            ],
        }
        monitoring_dir("prometheus.yml").write_text(yaml.safe_dump(document, sort_keys=False))

    def launch(self) -> int:
        if not Path(PROMETHEUS_BIN).is_file():
            raise StackError(f"{PROMETHEUS_BIN} not found: run `make system-deps` (Debian package prometheus)")
        cmd = [
            PROMETHEUS_BIN,
            f"--config.file={monitoring_dir('prometheus.yml')}",
            f"--storage.tsdb.path={monitoring_dir('prometheus-data')}",
            f"--web.listen-address={config.HOST}:{self.port()}",
            "--web.enable-lifecycle",
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.STATE)

    def healthy(self) -> bool:
        return http_get(f"{config.prometheus_url()}/-/ready")[0] == 200

    def describe(self) -> str:
        return config.prometheus_url()


class Alertmanager(Service):
    name = "alertmanager"
    marker = "alertmanager"
    start_timeout = 60.0

    def port(self) -> int:
        return config.PORTS["alertmanager"]

    def prepare(self) -> None:
        # A fresh notification log: production's keeps it across restarts so nothing is sent twice, but here an
        # interrupted test may leave an alert notified and never resolved, and the next session's same alert
        # would then be sent to no one.
        shutil.rmtree(monitoring_dir("alertmanager-data"), ignore_errors=True)
        alertmanager_file().parent.mkdir(parents=True, exist_ok=True)
        alertmanager_file().write_text(yaml.safe_dump(alertmanager_config(), sort_keys=False))

    def launch(self) -> int:
        if not Path(ALERTMANAGER_BIN).is_file():
            raise StackError(
                f"{ALERTMANAGER_BIN} not found: run `make system-deps` (Debian package prometheus-alertmanager)"
            )
        cmd = [
            ALERTMANAGER_BIN,
            f"--config.file={alertmanager_file()}",
            f"--storage.path={monitoring_dir('alertmanager-data')}",
            f"--web.listen-address={config.HOST}:{self.port()}",
            # A single Alertmanager: no gossip port, which would listen on every address.
            "--cluster.listen-address=",
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.STATE)

    def healthy(self) -> bool:
        return http_get(f"{config.alertmanager_url()}/-/ready")[0] == 200

    def describe(self) -> str:
        return config.alertmanager_url()


def services() -> list[Service]:
    return [StatsdExporter(), Alertmanager(), Prometheus()]
