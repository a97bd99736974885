"""What prometheus/statsd_exporter (v0.29, the official chart's image) makes of StatsD lines, in Python.

No exporter binary can run here, so the mapping semantics its README documents are implemented
for the tests, and tests/monitoring/test_statsd_exporter_model.py holds this model to the README's
own examples:

- glob rules: `*` stands for exactly one dot-separated part, every other part must be equal; among
  the glob rules that match, the first one listed wins (unless `defaults.glob_disable_ordering`,
  where a literal part beats `*` at each level);
- regex rules are tried only when no glob rule matched, in order, first match wins;
  `$n`/`${n}` in the name and labels take the n-th capture (`$0`, regex only, the whole name);
- `match_metric_type` (counter, gauge, observer) restricts a rule to one StatsD type;
- `action: drop` discards the event; an unmatched name becomes the metric name with every
  character outside [a-zA-Z0-9_] turned into `_`, without labels;
- counters add, gauges set (a `+`/`-` value adds), timers (`ms`) are divided by 1000 and observed
  by a summary (`_sum`, `_count` and quantiles, the default) or a histogram (`_bucket{le}`,
  `_sum`, `_count`; `observer_type: histogram`); `h` and `d` are observed unscaled;
- a name already registered with another type is a conflict: the event is dropped and counted.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import yaml

# The exporter's validation rules (pkg/mapper/mapper.go), so a mapping it would refuse fails here too.
_FIRST = r"[a-zA-Z_]([a-zA-Z0-9_\-])*"
_NEXT = r"[a-zA-Z0-9_]([a-zA-Z0-9_\-])*"
_TEMPLATE = r"(\$\{?\d+\}?)"
GLOB_LINE = re.compile(rf"^(\*|{_FIRST})(\.\*|\.{_NEXT})*$")
METRIC_NAME = re.compile(rf"^([a-zA-Z_]|{_TEMPLATE})([a-zA-Z0-9_]|{_TEMPLATE})*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DEFAULT_QUANTILES = (0.5, 0.9, 0.99)
STATSD_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def parse_line(line: str) -> tuple[str, str, str, float]:
    """`name:value|type[|@rate]` -> (name, value text, StatsD type, sample rate)."""
    name, sep, rest = line.partition(":")
    if not sep or not name:
        raise ValueError(f"not a StatsD line (name:value|type): {line!r}")
    fields = rest.split("|")
    if len(fields) < 2 or fields[1] not in STATSD_TYPES:
        raise ValueError(f"unsupported StatsD type in {line!r}: expected one of {sorted(STATSD_TYPES)}")
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            rate = float(extra[1:])
    return name, fields[0], fields[1], rate


class MappingError(ValueError):
    """A mapping statsd_exporter would refuse at start."""


@dataclass
class Rule:
    index: int
    match: str
    name: str
    labels: dict[str, str]
    match_type: str
    action: str
    metric_type: str
    observer_type: str
    buckets: tuple[float, ...]
    regex: re.Pattern[str] | None = None

    @property
    def parts(self) -> list[str]:
        return self.match.split(".")


def _expand(template: str, captures: list[str]) -> str:
    """`$n` and `${n}` replaced by capture n (captures[0] is `$0`); an out-of-range reference is empty."""

    def sub(found: re.Match[str]) -> str:
        index = int(found.group(1) or found.group(2))
        return captures[index] if index < len(captures) else ""

    return re.sub(r"\$\{(\d+)\}|\$(\d+)", sub, template)


def escape_metric_name(name: str) -> str:
    """pkg/mapper/escape.go: invalid characters become `_`, a leading digit gets a `_` prefix, `--` collapses."""
    if not name:
        return ""
    out = ["_"] if name[0].isdigit() else []
    previous = ""
    for char in name:
        if char.isascii() and (char.isalnum() or char == "_"):
            out.append(char)
        elif char == "-" and previous == "-":
            pass
        else:
            out.append("_")
        previous = char
    return "".join(out)


class Mapper:
    """The mapping half: StatsD name and type -> (rule or None, metric name, labels)."""

    def __init__(self, config: dict[str, Any] | str):
        if isinstance(config, str):
            config = yaml.safe_load(config) or {}
        if not isinstance(config, dict):
            raise MappingError(f"the mapping file must be a mapping with `mappings:`, got {type(config).__name__}")
        defaults = config.get("defaults") or {}
        self.ordering_disabled = bool(defaults.get("glob_disable_ordering", False))
        default_match_type = defaults.get("match_type") or "glob"
        default_observer = defaults.get("observer_type") or "summary"
        default_buckets = tuple((defaults.get("histogram_options") or {}).get("buckets") or DEFAULT_BUCKETS)
        self.rules: list[Rule] = []
        for index, raw in enumerate(config.get("mappings") or []):
            self.rules.append(self._rule(index, raw, default_match_type, default_observer, default_buckets))

    @staticmethod
    def _rule(index: int, raw: dict[str, Any], match_type: str, observer: str, buckets: tuple) -> Rule:
        where = f"mapping {index} ({raw.get('match')!r})"
        if not isinstance(raw, dict) or "match" not in raw:
            raise MappingError(f"{where}: every mapping needs `match`")
        name = str(raw.get("name") or "")
        if not name:
            raise MappingError(f"{where}: metric mapping didn't set a metric name")
        if not METRIC_NAME.match(name):
            raise MappingError(f"{where}: metric name {name!r} is not a valid Prometheus name or template")
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        for key in labels:
            if not LABEL_NAME.match(key):
                raise MappingError(f"{where}: invalid label key {key!r}")
        kind = raw.get("match_type") or match_type
        if kind not in ("glob", "regex"):
            raise MappingError(f"{where}: match_type must be glob or regex, not {kind!r}")
        action = raw.get("action") or "map"
        if action not in ("map", "drop"):
            raise MappingError(f"{where}: action must be map or drop, not {action!r}")
        metric_type = raw.get("match_metric_type") or ""
        if metric_type not in ("", "counter", "gauge", "observer"):
            raise MappingError(f"{where}: match_metric_type must be counter, gauge or observer")
        observer_type = raw.get("observer_type") or observer
        if observer_type not in ("summary", "histogram"):
            raise MappingError(f"{where}: observer_type must be summary or histogram")
        if observer_type == "histogram" and raw.get("summary_options"):
            raise MappingError(f"{where}: cannot use histogram observer and summary options at the same time")
        if observer_type == "summary" and raw.get("histogram_options"):
            raise MappingError(f"{where}: cannot use summary observer and histogram options at the same time")
        rule_buckets = tuple((raw.get("histogram_options") or {}).get("buckets") or buckets)
        rule = Rule(index, str(raw["match"]), name, labels, kind, action, metric_type, observer_type, rule_buckets)
        if kind == "glob":
            if not GLOB_LINE.match(rule.match):
                raise MappingError(f"{where}: invalid glob match (a `*` must be a whole dot-separated part)")
        else:
            try:
                rule.regex = re.compile(rule.match)
            except re.error as err:
                raise MappingError(f"{where}: invalid regex: {err}") from err
        return rule

    def _glob(self, name: str, metric_type: str) -> tuple[Rule, list[str]] | None:
        parts = name.split(".")
        candidates = []
        for rule in self.rules:
            if rule.match_type != "glob" or rule.metric_type not in ("", metric_type):
                continue
            pattern = rule.parts
            if len(pattern) != len(parts):
                continue
            if all(p == "*" or p == v for p, v in zip(pattern, parts, strict=True)):
                captures = [v for p, v in zip(pattern, parts, strict=True) if p == "*"]
                candidates.append((rule, captures))
        if not candidates:
            return None
        if self.ordering_disabled:
            # At each level a literal part beats `*`.
            return max(candidates, key=lambda found: [p != "*" for p in found[0].parts])
        return candidates[0]

    def lookup(self, name: str, metric_type: str) -> tuple[Rule | None, str, dict[str, str]]:
        """The rule that applies (None if unmapped), the metric name and the labels it gives."""
        found = self._glob(name, metric_type)
        if found is not None:
            rule, captures = found
            values = [name, *captures]
            return rule, _expand(rule.name, values), {k: _expand(v, values) for k, v in rule.labels.items()}
        for rule in self.rules:
            if rule.regex is None:
                continue
            match = rule.regex.search(name)
            if match is None or rule.metric_type not in ("", metric_type):
                continue
            values = [match.group(0), *[g or "" for g in match.groups()]]
            return rule, _expand(rule.name, values), {k: _expand(v, values) for k, v in rule.labels.items()}
        return None, name, {}


@dataclass
class Family:
    kind: str  # counter, gauge, summary, histogram
    buckets: tuple[float, ...] = ()
    # label items -> value (counter, gauge) or list of observations (summary, histogram)
    children: dict[tuple[tuple[str, str], ...], Any] = field(default_factory=dict)


class Exporter:
    """The exporting half: feed StatsD lines, read the Prometheus series they become."""

    def __init__(self, mapping_config: dict[str, Any] | str):
        self.mapper = Mapper(mapping_config)
        self.families: dict[str, Family] = {}
        self.dropped: list[str] = []
        self.unmapped: list[str] = []
        self.conflicts: list[str] = []

    def feed(self, text: str) -> None:
        """One or more newline-separated StatsD lines, `name:value|type[|@rate]`."""
        for line in text.splitlines():
            if line.strip():
                self.event(line.strip())

    def event(self, line: str) -> None:
        name, raw_value, statsd_type, rate = parse_line(line)
        relative = statsd_type == "g" and raw_value[:1] in "+-"
        value = float(raw_value)
        metric_type = STATSD_TYPES[statsd_type]
        rule, metric_name, labels = self.mapper.lookup(name, metric_type)
        if rule is not None and rule.action == "drop":
            self.dropped.append(name)
            return
        if rule is None:
            self.unmapped.append(name)
        metric_name = escape_metric_name(metric_name)
        if metric_type == "counter":
            self._counter(metric_name, labels, value / rate)
        elif metric_type == "gauge":
            self._gauge(metric_name, labels, value, relative)
        else:
            scaled = value / 1000 if statsd_type == "ms" else value
            observer = rule.observer_type if rule is not None else "summary"
            buckets = rule.buckets if rule is not None else DEFAULT_BUCKETS
            self._observe(metric_name, labels, scaled, observer, buckets, round(1 / rate) if rate < 1 else 1)

    def _family(self, name: str, kind: str, buckets: tuple = ()) -> Family | None:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(kind, buckets)
        if family.kind != kind:
            self.conflicts.append(f"{name}: {kind} event for a registered {family.kind}")
            return None
        return family

    @staticmethod
    def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(labels.items()))

    def _counter(self, name: str, labels: dict[str, str], value: float) -> None:
        if value < 0:
            self.conflicts.append(f"{name}: negative counter increment {value}")
            return
        family = self._family(name, "counter")
        if family is not None:
            key = self._key(labels)
            family.children[key] = family.children.get(key, 0.0) + value

    def _gauge(self, name: str, labels: dict[str, str], value: float, relative: bool) -> None:
        family = self._family(name, "gauge")
        if family is not None:
            key = self._key(labels)
            family.children[key] = family.children.get(key, 0.0) + value if relative else value

    def _observe(self, name: str, labels: dict, value: float, observer: str, buckets: tuple, times: int) -> None:
        family = self._family(name, observer, tuple(sorted(buckets)) if observer == "histogram" else ())
        if family is not None:
            family.children.setdefault(self._key(labels), []).extend([value] * times)

    def series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """(series name, sorted label items) -> value, as /metrics would show them."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for name, family in self.families.items():
            for key, value in family.children.items():
                if family.kind in ("counter", "gauge"):
                    out[(name, key)] = value
                    continue
                out[(f"{name}_sum", key)] = math.fsum(value)
                out[(f"{name}_count", key)] = float(len(value))
                if family.kind == "histogram":
                    for bound in (*family.buckets, math.inf):
                        le = "+Inf" if bound == math.inf else _format_float(bound)
                        count = float(sum(1 for v in value if v <= bound))
                        out[(f"{name}_bucket", tuple(sorted((*key, ("le", le)))))] = count
                else:
                    ordered = sorted(value)
                    for quantile in DEFAULT_QUANTILES:
                        rank = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
                        out[(name, tuple(sorted((*key, ("quantile", str(quantile))))))] = ordered[rank]
        return out

    def series_names(self) -> set[str]:
        return {name for name, _ in self.series()}

    def label_sets(self) -> dict[str, set[tuple[str, ...]]]:
        """Metric family -> the distinct label-name sets its series carry (the README: exactly one each)."""
        found: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        for name, family in self.families.items():
            for key in family.children:
                found[name].add(tuple(k for k, _ in key))
        return dict(found)


def _format_float(value: float) -> str:
    """The `le` label as client_golang writes it (shortest form, no trailing `.0`), for bounds below 1e21."""
    text = repr(float(value))
    return text.removesuffix(".0")
