"""The statsd_exporter model (statsd_exporter.py) against the examples of statsd_exporter's README (v0.29).

Each case is the README's own configuration and input with the output it documents, so a change to
the model that departs from the exporter fails here before it can bless a wrong mapping.
"""

from __future__ import annotations

import pytest

from tests.monitoring.statsd_exporter import Exporter, Mapper, MappingError, escape_metric_name

README_GLOB = """
mappings:
- match: "test.dispatcher.*.*.*"
  name: "dispatcher_events_total"
  labels:
    processor: "$1"
    action: "$2"
    outcome: "$3"
    job: "test_dispatcher"
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
"""


def _one(exporter: Exporter) -> tuple[str, dict[str, str], float]:
    ((name, labels), value), *rest = exporter.series().items()
    assert not rest, exporter.series()
    return name, dict(labels), value


@pytest.mark.parametrize(
    ("line", "name", "labels"),
    [
        (
            "test.dispatcher.FooProcessor.send.success:1|c",
            "dispatcher_events_total",
            {"processor": "FooProcessor", "action": "send", "outcome": "success", "job": "test_dispatcher"},
        ),
        (
            "foo_product.signup.facebook.failure:1|c",
            "signup_events_total",
            {"provider": "facebook", "outcome": "failure", "job": "foo_product_server"},
        ),
        ("test.web-server.foo.bar:1|c", "test_web_server_foo_bar", {}),
    ],
)
def test_readme_glob_example(line, name, labels):
    exporter = Exporter(README_GLOB)
    exporter.feed(line)
    assert _one(exporter) == (name, labels, 1.0)


def test_readme_name_from_a_capture():
    exporter = Exporter('mappings:\n- match: "test.*.*.counter"\n  name: "${2}_total"\n  labels:\n    provider: "$1"\n')
    exporter.feed("test.aws.requests.counter:3|c")
    assert _one(exporter) == ("requests_total", {"provider": "aws"}, 3.0)


ORDERED = ["a.b.c", "a.b.*", "a.*.d", "a.*.*"]


def _ordering_config(order: list[str], *, disable: bool = False) -> str:
    rules = "".join(f'- match: "{m}"\n  name: "rule_{i}"\n' for i, m in enumerate(order))
    defaults = "defaults:\n  glob_disable_ordering: true\n" if disable else ""
    return defaults + "mappings:\n" + rules


@pytest.mark.parametrize(("metric", "rule"), [("a.b.c", 0), ("a.b.d", 1), ("a.c.d", 2), ("a.c.e", 3)])
def test_readme_ordering_more_specific_first(metric, rule):
    assert Mapper(_ordering_config(ORDERED)).lookup(metric, "counter")[1] == f"rule_{rule}"


@pytest.mark.parametrize("metric", ["a.b.c", "a.b.d", "a.c.d", "a.c.e"])
def test_first_listed_glob_wins_even_when_less_specific(metric):
    reversed_order = list(reversed(ORDERED))
    assert Mapper(_ordering_config(reversed_order)).lookup(metric, "counter")[1] == "rule_0"


@pytest.mark.parametrize(("metric", "match"), [("a.b.c", "a.b.c"), ("a.b.d", "a.b.*"), ("a.c.d", "a.*.d")])
def test_readme_unordered_mapping_most_specific_wins(metric, match):
    order = list(reversed(ORDERED))
    rule, name, _ = Mapper(_ordering_config(order, disable=True)).lookup(metric, "counter")
    assert rule.match == match and name == f"rule_{order.index(match)}"


def test_a_star_is_exactly_one_part():
    mapper = Mapper('mappings:\n- match: "test.*"\n  name: "one"\n')
    assert mapper.lookup("test.a", "counter")[1] == "one"
    assert mapper.lookup("test.a.b", "counter")[0] is None
    assert mapper.lookup("test", "counter")[0] is None


README_REGEX = r"""
mappings:
- match: "test\\.(\\w+)\\.(\\w+)\\.counter"
  match_type: regex
  name: "${2}_total"
  labels:
    provider: "$1"
- match: "(.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count"
  match_type: regex
  name: "request_total"
  labels:
    hostname: "$1"
    exec: "$2"
    protocol: "$3"
    code: "$4"
"""


def test_readme_regex_examples():
    exporter = Exporter(README_REGEX)
    exporter.feed("test.aws.requests.counter:1|c\nweb01.nginx--http.status.500.count:2|c")
    assert exporter.series() == {
        ("requests_total", (("provider", "aws"),)): 1.0,
        ("request_total", (("code", "500"), ("exec", "nginx"), ("hostname", "web01"), ("protocol", "http"))): 2.0,
    }


def test_regex_rules_only_after_every_glob_rule():
    config = 'mappings:\n- match: "a\\\\.b\\\\.c"\n  match_type: regex\n  name: "by_regex"\n'
    config += '- match: "a.*.c"\n  name: "by_glob"\n'
    mapper = Mapper(config)
    assert mapper.lookup("a.b.c", "counter")[1] == "by_glob"
    assert mapper.lookup("x.a.b.c", "counter")[1] == "by_regex"  # unanchored, like Go's regexp


def test_readme_special_match_group_zero():
    exporter = Exporter(
        'mappings:\n- match: ".+"\n  match_type: regex\n  name: "$0"\n  labels:\n    statsd_metric_name: "$0"\n'
    )
    exporter.feed("my.statsd_counter:1|c")
    assert _one(exporter) == ("my_statsd_counter", {"statsd_metric_name": "my.statsd_counter"}, 1.0)


def test_readme_drop_action():
    config = """
mappings:
- match: "test.timing.*.*.*"
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
- match: "."
  match_type: regex
  action: drop
  name: "dropped"
"""
    exporter = Exporter(config)
    exporter.feed("test.timing.web.aws.ok:250|ms\nsomething.else:1|c")
    assert exporter.dropped == ["something.else"]
    assert exporter.series_names() == {"my_timer", "my_timer_sum", "my_timer_count"}


def test_readme_match_metric_type():
    exporter = Exporter(
        'mappings:\n- match: "test.foo.*"\n  name: "test_foo"\n  match_metric_type: counter\n'
        '  labels:\n    provider: "$1"\n'
    )
    exporter.feed("test.foo.aws:1|c\ntest.foo.gcp:7|g")
    assert exporter.series() == {("test_foo", (("provider", "aws"),)): 1.0, ("test_foo_gcp", ()): 7.0}


def test_readme_timer_in_milliseconds_becomes_a_summary_in_seconds():
    exporter = Exporter('mappings:\n- match: "test.timing.*.*.*"\n  name: "my_timer"\n  labels:\n    job: "$1"\n')
    exporter.feed("test.timing.a.b.c:300|ms\ntest.timing.a.b.c:100|ms")
    series = exporter.series()
    assert series[("my_timer_sum", (("job", "a"),))] == pytest.approx(0.4)
    assert series[("my_timer_count", (("job", "a"),))] == 2.0
    assert ("my_timer", (("job", "a"), ("quantile", "0.5"))) in series


def test_readme_timer_as_histogram_with_buckets():
    config = """
mappings:
- match: "test.timing.*.*.*"
  observer_type: histogram
  histogram_options:
    buckets: [ 0.01, 0.025, 0.05, 0.1 ]
  name: "my_timer"
  labels:
    provider: "$2"
"""
    exporter = Exporter(config)
    exporter.feed("test.timing.a.aws.ok:20|ms\ntest.timing.a.aws.ok:70|ms\ntest.timing.a.aws.ok:500|ms")
    buckets = {dict(k)["le"]: v for (n, k), v in exporter.series().items() if n == "my_timer_bucket"}
    assert buckets == {"0.01": 0, "0.025": 1, "0.05": 1, "0.1": 2, "+Inf": 3}
    assert exporter.series()[("my_timer_count", (("provider", "aws"),))] == 3


def test_histogram_events_are_not_scaled_and_default_buckets_apply():
    exporter = Exporter('mappings:\n- match: "x.*"\n  name: "x"\n  observer_type: histogram\n  labels:\n    ab: "$1"\n')
    exporter.feed("x.y:3|h")
    series = exporter.series()
    assert series[("x_sum", (("ab", "y"),))] == 3.0
    assert series[("x_bucket", (("ab", "y"), ("le", "2.5")))] == 0
    assert series[("x_bucket", (("ab", "y"), ("le", "5")))] == 1


def test_label_names_need_two_characters_as_in_the_exporter():
    with pytest.raises(MappingError, match="invalid label key 'a'"):
        Mapper('mappings:\n- match: "x.*"\n  name: "x"\n  labels:\n    a: "$1"\n')


def test_unmapped_names_are_escaped_without_labels():
    assert escape_metric_name("airflow.dag_processing.import-errors") == "airflow_dag_processing_import_errors"
    assert escape_metric_name("9lives") == "_9lives"
    exporter = Exporter("mappings: []")
    exporter.feed("airflow.scheduler.tasks.starving:2|g")
    assert _one(exporter) == ("airflow_scheduler_tasks_starving", {}, 2.0)


def test_a_name_with_another_type_is_a_conflict():
    exporter = Exporter("mappings: []")
    exporter.feed("a.b:1|c\na.b:5|g")
    assert exporter.conflicts == ["a_b: gauge event for a registered counter"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('mappings:\n- match: "a.b*"\n  name: "x"\n', "invalid glob"),
        ('mappings:\n- match: "1a.b"\n  name: "x"\n', "invalid glob"),
        ('mappings:\n- match: "a.b"\n', "didn't set a metric name"),
        ('mappings:\n- match: "a.b"\n  name: "x-y"\n', "not a valid Prometheus name"),
        ('mappings:\n- match: "a.*"\n  name: "x"\n  labels:\n    "bad-key": "$1"\n', "invalid label key"),
        ('mappings:\n- match: "a("\n  match_type: regex\n  name: "x"\n', "invalid regex"),
        ('mappings:\n- match: "a.b"\n  name: "x"\n  action: keep\n', "action must be"),
    ],
)
def test_mappings_the_exporter_refuses_are_refused(config, message):
    with pytest.raises(MappingError, match=message):
        Mapper(config)


@pytest.mark.parametrize("line", ["no-colon", "a.b:1", "a.b:1|x", ":1|c"])
def test_bad_lines_are_refused_with_the_reason(line):
    with pytest.raises(ValueError, match="StatsD"):
        Exporter("mappings: []").feed(line)
