"""The statsd mappings (values/base.yaml, airflow.statsd.overrideMappings) against what Airflow 3.3 sends.

The lines come from Airflow's own stats module and `statsd` client (airflow_statsd_lines.py), for
every metric of its registry and for the calls behind the alerts and the dashboard; the exporter is
the model in statsd_exporter.py, itself checked against statsd_exporter's README.
"""

from __future__ import annotations

import pytest
import yaml

from tests.chart import chartlib
from tests.monitoring import metric_calls
from tests.monitoring.conftest import airflow_values, mapping_document, metrics_config
from tests.monitoring.statsd_exporter import STATSD_TYPES, Exporter, Mapper, parse_line


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
def test_every_overlay_loads_in_the_exporter(combo):
    """statsd_exporter refuses a bad mapping at start (no metrics at all): same checks here."""
    if not (chartlib.SHARED_CHART / "values.yaml").is_file():
        pytest.skip("official chart defaults not found")
    Mapper(mapping_document(airflow_values(chartlib.OVERLAYS[combo])["statsd"]))


@pytest.mark.parametrize(
    ("ident", "expected"),
    [(ident, expected) for ident, _, expected in metric_calls.PIPELINE_CALLS if expected],
    ids=[ident for ident, _, expected in metric_calls.PIPELINE_CALLS if expected],
)
def test_pipeline_metrics_become_the_series_the_alerts_read(mappings, airflow_lines, ident, expected):
    lines = airflow_lines[ident]
    exporter = Exporter(mappings)
    exporter.feed("\n".join(lines))
    series = exporter.series()
    for name, labels, value in expected:
        key = (name, tuple(sorted(labels.items())))
        assert key in series, f"{ident}: {lines} gave {sorted(series)}, not {name}{labels}"
        assert series[key] == pytest.approx(value), f"{ident}: {name}{labels}"


def test_each_series_name_has_one_label_set(exporter):
    """statsd_exporter's README: metrics with the same name must have the same label names."""
    mixed = {name: sets for name, sets in exporter.label_sets().items() if len(sets) > 1}
    assert mixed == {}
    assert exporter.conflicts == []


def test_no_dag_task_or_pool_name_ends_up_in_a_series_name(mappings, airflow_lines):
    exporter = Exporter(mappings)
    for call in metric_calls.registry_calls():
        if call["deployed"]:
            exporter.feed("\n".join(airflow_lines[call["id"]]))
    values = [metric_calls.SAMPLES[k].replace(".", "_").replace("-", "_") for k in metric_calls.IDENTIFIERS]
    leaking = sorted(name for name in exporter.series_names() if any(v in name for v in values))
    assert leaking == [], "map these legacy names so the identifier becomes a label"


def test_only_tagless_twins_are_dropped(mappings, airflow_lines):
    """A line is dropped only when the same call's other line (the legacy name) is kept."""
    mapper = Mapper(mappings)
    lost = []
    for ident, lines in airflow_lines.items():
        looked_up = {}
        for line in lines:
            name, _, statsd_type, _ = parse_line(line)
            looked_up[line] = mapper.lookup(name, STATSD_TYPES[statsd_type])[0]
        dropped = [line for line, rule in looked_up.items() if rule is not None and rule.action == "drop"]
        kept = [line for line, rule in looked_up.items() if rule is None or rule.action != "drop"]
        for line in dropped:
            if not kept and line.split(":")[0] not in metric_calls.DROPPED_WITHOUT_TWIN:
                lost.append(f"{ident}: {line}")
    assert lost == []


def test_every_rule_can_match(mappings):
    """An earlier, broader glob of the same length would take every name a later one matches."""
    rules = [r for r in Mapper(mappings).rules if r.match_type == "glob"]
    shadowed = []
    for later in rules:
        for earlier in rules[: rules.index(later)]:
            if (
                len(earlier.parts) == len(later.parts)
                and earlier.metric_type in ("", later.metric_type)
                and all(e in ("*", p) for e, p in zip(earlier.parts, later.parts, strict=True))
            ):
                shadowed.append(f"{later.match} (behind {earlier.match})")
    assert shadowed == []


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
