"""The statsd mappings (values/base.yaml, airflow.statsd.overrideMappings) against what Airflow 3.3 sends.

The lines come from Airflow's own stats module and `statsd` client (airflow_statsd_lines.py), for
every metric of its registry and for the calls behind the alerts and the dashboard; they go through
the real statsd_exporter, at the tag the release runs, over UDP, and the series are read from its
/metrics (exporter_process.py).
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart import chartlib
from tests.monitoring import metric_calls
from tests.monitoring.conftest import airflow_values, mapping_document, metrics_config
from tests.monitoring.exporter_process import ExporterProcess, check_config

STATSD_TYPE_OF = {"counter": "c", "gauge": "g", "observer": "ms", "": "c"}


def mapping_lines(names: tuple[str, ...]) -> tuple[str, list[int]]:
    """The overlay file whose airflow.statsd.overrideMappings the chart takes (the last one setting it: Helm
    replaces lists), and the line of each of its entries."""
    for name in reversed(names):
        path = chartlib.VALUES / f"{name}.yaml"
        node = yaml.compose(path.read_text())
        for key in ("airflow", "statsd", "overrideMappings"):
            node = next((v for k, v in getattr(node, "value", []) if getattr(k, "value", None) == key), None)
            if node is None:
                break
        if node is not None:
            return str(path.relative_to(chartlib.REPO)), [item.start_mark.line + 1 for item in node.value]
    raise AssertionError(f"no overlay of {names} sets airflow.statsd.overrideMappings")


def mapping_errors(document: dict, names: tuple[str, ...], tmp_path) -> list[str]:
    """statsd_exporter --check-config on the mappings; when it refuses them, each entry it refuses alone,
    named by file and line."""
    whole = tmp_path / "mappings.yml"
    whole.write_text(yaml.safe_dump(document, sort_keys=False))
    error = check_config(whole)
    if error is None:
        return []
    path, lines = mapping_lines(names)
    located = []
    for index, entry in enumerate(document["mappings"]):
        one = tmp_path / f"mapping-{index}.yml"
        one.write_text(yaml.safe_dump({**document, "mappings": [entry]}, sort_keys=False))
        entry_error = check_config(one)
        if entry_error:
            located.append(f"{path}:{lines[index]}: mapping {entry.get('match')!r}: {entry_error}")
    return located or [f"{path}: {error}"]


def test_airflow_sends_plain_statsd_with_legacy_names(production_airflow):
    """The mappings read dag_id, task_id... out of the legacy dotted names, which only plain StatsD sends."""
    config = metrics_config(production_airflow)
    assert production_airflow["statsd"]["enabled"] is True
    assert config["statsd_on"] == "True"
    assert config.get("statsd_prefix") == "airflow", "every mapping starts with the `airflow.` prefix"
    for option in ("statsd_datadog_enabled", "statsd_influxdb_enabled", "otel_on"):
        assert config.get(option, "False").lower() == "false", f"[metrics] {option} changes the lines sent"
    assert config.get("legacy_names_on", "True").lower() == "true", "the legacy names carry dag_id and task_id"


@pytest.mark.parametrize("combo", list(chartlib.OVERLAYS))
def test_every_overlay_loads_in_the_exporter(combo, tmp_path):
    """statsd_exporter refuses a bad mapping at start, and then exports nothing at all."""
    if not (chartlib.SHARED_CHART / "values.yaml").is_file():
        pytest.skip(f"{chartlib.SHARED_CHART}/values.yaml not found (official chart defaults)")
    names = chartlib.OVERLAYS[combo]
    assert mapping_errors(mapping_document(airflow_values(names)["statsd"]), names, tmp_path) == []


def test_a_refused_mapping_is_named_by_file_and_line(mappings, tmp_path):
    """What the test above prints when the exporter refuses one entry: its file, its line, the exporter's reason."""
    names = chartlib.OVERLAYS[chartlib.PRODUCTION]
    path, lines = mapping_lines(names)
    broken = {**mappings, "mappings": [dict(m) for m in mappings["mappings"]]}
    broken["mappings"][3]["labels"] = {"1dag_id": "$1"}
    errors = mapping_errors(broken, names, tmp_path)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}:{lines[3]}: mapping {mappings['mappings'][3]['match']!r}: ")
    assert "invalid label key: 1dag_id" in errors[0]


@pytest.mark.parametrize(
    ("ident", "expected"),
    [(ident, expected) for ident, _, expected in metric_calls.PIPELINE_CALLS if expected],
    ids=[ident for ident, _, expected in metric_calls.PIPELINE_CALLS if expected],
)
def test_pipeline_metrics_become_the_series_the_alerts_read(mappings, airflow_lines, ident, expected, tmp_path):
    lines = airflow_lines[ident]
    with ExporterProcess(mappings, tmp_path) as exporter:
        exporter.feed(lines)
        series = exporter.series()
    for name, labels, value in expected:
        key = (name, tuple(sorted(labels.items())))
        assert key in series, f"{ident}: {lines} gave {sorted(series)}, not {name}{labels}"
        assert series[key] == pytest.approx(value), f"{ident}: {name}{labels}"


def test_no_line_conflicts_with_another_series(exporter):
    """statsd_exporter refuses an event whose series name is taken by another type or other label names
    (its README: one name, one set of label names), and counts it here."""
    assert exporter.conflicts() == []


def test_no_dag_task_or_pool_name_ends_up_in_a_series_name(mappings, airflow_lines, tmp_path):
    with ExporterProcess(mappings, tmp_path) as exporter:
        exporter.feed(
            line for call in metric_calls.registry_calls() if call["deployed"] for line in airflow_lines[call["id"]]
        )
        names = exporter.series_names()
    values = [metric_calls.SAMPLES[k].replace(".", "_").replace("-", "_") for k in metric_calls.IDENTIFIERS]
    leaking = sorted(name for name in names if any(v in name for v in values))
    assert leaking == [], "map these legacy names so the identifier becomes a label"


def test_only_tagless_twins_are_dropped(mappings, airflow_lines, tmp_path):
    """A call's line is dropped only when the same call's other line (the legacy name) is kept."""
    lost = []
    with ExporterProcess(mappings, tmp_path) as exporter:
        for ident, lines in airflow_lines.items():
            before = exporter.dropped()
            exporter.feed(lines)
            if lines and exporter.dropped() - before == len(lines):
                lost += [
                    f"{ident}: {line}" for line in lines if line.split(":")[0] not in metric_calls.DROPPED_WITHOUT_TWIN
                ]
    assert lost == []


def _sample_name(match: str, index: int) -> str:
    """A metric name `match` takes, each `*` a token of its own."""
    parts = match.split(".")
    return ".".join(f"r{index}w{n}" if part == "*" else part for n, part in enumerate(parts))


def test_every_rule_can_match(mappings, tmp_path):
    """A name made for each glob rule is mapped by that rule, not by an earlier, broader one that the
    exporter would try first."""
    rules = [(i, m) for i, m in enumerate(mappings["mappings"]) if m.get("match_type", "glob") == "glob"]
    taken_elsewhere = []
    with ExporterProcess(mappings, tmp_path) as exporter:
        for index, rule in rules:
            name = _sample_name(rule["match"], index)
            before, dropped_before = exporter.series(), exporter.dropped()
            exporter.feed([f"{name}:1|{STATSD_TYPE_OF[rule.get('match_metric_type', '')]}"])
            new = {k for k in exporter.series() if k not in before}
            if rule.get("action") == "drop":
                if exporter.dropped() == dropped_before:
                    taken_elsewhere.append(f"{rule['match']}: {name} was not dropped, it gave {sorted(new)}")
                continue
            captures = [p for p, m in zip(name.split("."), rule["match"].split("."), strict=True) if m == "*"]
            expected = re.sub(r"\$\{?(\d+)\}?", lambda g, c=captures: c[int(g.group(1)) - 1], rule["name"])
            bases = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n, _ in new}
            if expected not in bases | {n for n, _ in new}:
                taken_elsewhere.append(f"{rule['match']}: {name} gave {sorted(new)}, not {expected}")
    assert taken_elsewhere == []


def test_the_rendered_configmap_holds_these_mappings(mappings, full_render):
    objs = chartlib.objects(full_render)
    config = chartlib.find(objs, "ConfigMap", "tripclick-statsd")
    assert yaml.safe_load(config["data"]["mappings.yml"]) == mappings
    deployment = chartlib.find(objs, "Deployment", "tripclick-statsd")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/statsd-config" in annotations, "a mapping change must restart the exporter"
    service = chartlib.find(objs, "Service", "tripclick-statsd")
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        f":{chartlib.overlay_values(chartlib.OVERLAYS[chartlib.PRODUCTION])['airflow']['images']['statsd']['tag']}"
    ), "the release runs the exporter version the tests and the local stack build"
