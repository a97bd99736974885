"""The real statsd_exporter as a process of a test: StatsD lines in over UDP, series out of /metrics, read
with prometheus_client's parser under the names Prometheus stores.

The binary is the one the local stack runs, built from its Go module at the tag values/base.yaml pins
(demo/stack/monitoring.py). Each process gets free loopback ports and its own mappings file.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from demo.stack import monitoring

# The exporter's own series, and the Go and process collectors' it carries: not Airflow's.
OWN_PREFIXES = ("statsd_exporter_", "statsd_metric_mapper_", "go_", "process_", "promhttp_")
# One datagram holds several lines, as a StatsD client's pipeline sends them; loopback's MTU is far larger.
DATAGRAM_BYTES = 1400
# Datagrams sent before waiting for the exporter to catch up: far below what its socket buffer holds.
IN_FLIGHT_DATAGRAMS = 50

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_config(path: Path) -> str | None:
    """statsd_exporter --check-config on a mappings file: None when it loads, else the exporter's error line."""
    done = subprocess.run(
        [str(monitoring.exporter_binary()), f"--statsd.mapping-config={path}", "--check-config"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        return None
    errors = [line for line in done.stderr.splitlines() if "level=ERROR" in line]
    return (errors or done.stderr.splitlines() or [f"exit {done.returncode}"])[-1]


class ExporterProcess:
    """One statsd_exporter with `mappings` (a mappings.yml document); close() stops it."""

    def __init__(self, mappings: dict[str, Any] | str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.mappings = workdir / "mappings.yml"
        self.mappings.write_text(mappings if isinstance(mappings, str) else yaml.safe_dump(mappings, sort_keys=False))
        error = check_config(self.mappings)
        if error:
            raise ValueError(f"statsd_exporter refuses {self.mappings}: {error}")
        self.udp = ("127.0.0.1", _free_port(socket.SOCK_DGRAM))
        self.url = f"http://127.0.0.1:{_free_port(socket.SOCK_STREAM)}"
        self.log = workdir / "statsd_exporter.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary, our own arguments
                [
                    str(monitoring.exporter_binary()),
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                    f"--statsd.listen-udp={self.udp[0]}:{self.udp[1]}",
                    "--statsd.listen-tcp=",
                    f"--statsd.mapping-config={self.mappings}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.sent = 0
        self.in_flight = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deadline = time.monotonic() + 30
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"statsd_exporter did not come up; its log:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/healthy", timeout=2) as resp:  # noqa: S310 - loopback
                return resp.status == 200
        except OSError:
            return False

    def close(self) -> None:
        self.sock.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ExporterProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def feed(self, lines: Iterable[str]) -> None:
        """Send the lines and wait until the exporter has handled every one (mapped, dropped or unmapped)."""
        batch: list[str] = []
        for line in lines:
            if batch and len("\n".join([*batch, line])) > DATAGRAM_BYTES:
                self._send(batch)
                batch = []
            batch.append(line)
        if batch:
            self._send(batch)
        self._wait_handled()

    def _wait_handled(self) -> None:
        deadline = time.monotonic() + 30
        while (handled := self.handled()) < self.sent:
            if time.monotonic() > deadline:
                raise RuntimeError(f"statsd_exporter handled {handled} of the {self.sent} lines sent; see {self.log}")
            time.sleep(0.02)

    def _send(self, batch: list[str]) -> None:
        self.sock.sendto("\n".join(batch).encode(), self.udp)
        self.sent += len(batch)
        self.in_flight += 1
        # UDP has no back-pressure: thousands of lines sent at once overflow the exporter's socket buffer and
        # are lost (a day's capture is some 16,000). Waiting every few datagrams keeps the buffer from filling.
        if self.in_flight >= IN_FLIGHT_DATAGRAMS:
            self._wait_handled()
            self.in_flight = 0

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
        # prometheus_client names every counter sample <family>_total, as OpenMetrics does; Prometheus keeps the
        # name the exporter wrote (airflow_scheduler_heartbeat), which is what the rules query.
        written = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
        return [
            (
                sample.name if sample.name in written else sample.name.removesuffix("_total"),
                dict(sample.labels),
                sample.value,
            )
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def own(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """One of the exporter's own series, by label set."""
        return {tuple(sorted(labels.items())): value for n, labels, value in self.samples() if n == name}

    def handled(self) -> float:
        actions = sum(self.own("statsd_exporter_events_actions_total").values())
        return actions + sum(self.own("statsd_exporter_events_unmapped_total").values())

    def dropped(self) -> float:
        return self.own("statsd_exporter_events_actions_total").get((("action", "drop"),), 0.0)

    def conflicts(self) -> list[str]:
        """Events refused because their series name is registered with another type or other label names."""
        return [
            f"{dict(labels)['metric_name']} ({dict(labels)['type']}): {value:g}"
            for labels, value in self.own("statsd_exporter_events_conflict_total").items()
        ]

    def series(self) -> Series:
        """Airflow's series: (name, sorted labels) -> value."""
        return {
            (name, tuple(sorted(labels.items()))): value
            for name, labels, value in self.samples()
            if not name.startswith(OWN_PREFIXES)
        }

    def series_names(self) -> set[str]:
        return {name for name, _ in self.series()}
