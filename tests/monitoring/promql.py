"""Series a PromQL expression reads, from its syntax tree (promql-parser), not from a text search."""

from __future__ import annotations

from dataclasses import dataclass

import promql_parser


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    def label(self, name: str) -> list[tuple[str, str]]:
        return [(op, value) for label, op, value in self.matchers if label == name]


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in `expr` (raises ValueError with the parser's message if it does not parse)."""
    found: list[Selector] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, _OPS.get(str(m.op), str(m.op)), m.value) for m in node.matchers.matchers)
            name = node.name or next((v for label, op, v in matchers if label == "__name__" and op == "="), "")
            if not name:
                raise ValueError(f"a selector without a fixed metric name in {expr!r}")
            found.append(Selector(name, tuple(m for m in matchers if m[0] != "__name__")))

    promql_parser.walk(promql_parser.parse(expr), visit, None)
    return found
