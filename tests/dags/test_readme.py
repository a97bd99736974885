"""The README and docs/ stay true: generated reference, commands, the module -> test map, the README's size and
its diagrams."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TESTING = REPO / "docs" / "testing.md"
MODULE_MAP = "## Where each module is tested"
# The folders whose every file that table leads to its tests.
MAPPED = ("dags", "tripclick_ops", "scripts", "demo", "workloads", "chart", "values", "image", "cluster")
# The newcomer's page: read in five minutes. Detail belongs in docs/.
README_LINE_BUDGET = 120
# Diagram types Mermaid's own grammar starts with (first word of the block).
MERMAID_TYPES = {
    "flowchart",
    "graph",
    "sequenceDiagram",
    "classDiagram",
    "stateDiagram",
    "stateDiagram-v2",
    "erDiagram",
    "journey",
    "gantt",
    "pie",
    "gitGraph",
    "mindmap",
    "timeline",
    "quadrantChart",
    "requirementDiagram",
    "C4Context",
    "C4Container",
    "C4Deployment",
    "block-beta",
    "architecture-beta",
}
FLOWCHART_DIRECTIONS = {"TB", "TD", "BT", "RL", "LR"}
PAIRS = {"[": "]", "(": ")", "{": "}"}


def _text(path) -> str:
    return path.read_text()


def _code(text: str) -> str:
    """Inline code spans and fenced or indented code: where the docs write commands."""
    spans = re.findall(r"`([^`\n]+)`", text)
    blocks = re.findall(r"^(?: {4}|\t)(.+)$", text, flags=re.M)
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)
    return "\n".join([*spans, *blocks, *fenced])


def mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```", text, flags=re.M | re.S)


def mermaid_problems(block: str) -> list[str]:
    """What makes a block no Mermaid diagram at all: an unknown type, brackets or subgraphs left open.

    Not a full Mermaid parser (none runs in Python); it catches a typo in the type line, a label whose
    bracket or quote is never closed, and a subgraph without its `end`.
    """
    lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("%%")]
    if not lines:
        return ["empty block"]
    head = lines[0].split()
    problems = []
    if head[0] not in MERMAID_TYPES:
        problems.append(f"unknown diagram type {head[0]!r}")
    elif head[0] in ("flowchart", "graph") and (len(head) < 2 or head[1] not in FLOWCHART_DIRECTIONS):
        problems.append(f"flowchart without a direction: {lines[0]!r}")
    depth = 0
    for line in lines[1:]:
        if line.count('"') % 2:
            problems.append(f"unclosed quote: {line}")
        stack = []
        for char in re.sub(r'"[^"]*"', '""', line):
            if char in PAIRS:
                stack.append(PAIRS[char])
            elif char in PAIRS.values() and (not stack or stack.pop() != char):
                problems.append(f"unbalanced {char!r}: {line}")
                break
        if stack:
            problems.append(f"unclosed bracket: {line}")
        depth += line.split()[0] == "subgraph"
        depth -= line == "end"
        if depth < 0:
            problems.append(f"`end` without a subgraph: {line}")
    if depth > 0:
        problems.append("subgraph without `end`")
    return problems


def flowchart_edges(block: str) -> set[tuple[str, str]]:
    """(from, to) node ids of `a & b --> c` / `-.->` lines; labels in brackets are dropped."""
    edges = set()
    for line in block.splitlines()[1:]:
        line = re.sub(r'\[[^\]]*\]|\("[^"]*"\)', "", line.strip())
        parts = re.split(r"\s*(?:-->|-\.->|==>)\s*", line)
        groups = [[node.strip() for node in part.split("&")] for part in parts]
        for ups, downs in itertools.pairwise(groups):
            edges |= {(up, down) for up in ups for down in downs}
    return edges


def module_map() -> list[tuple[list[str], list[str], list[str]]]:
    """docs/testing.md's "Where each module is tested": (files or folders, test files, make targets) a row."""
    section = _text(TESTING).split(MODULE_MAP, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            paths, tests, targets = (cell.strip() for cell in line.strip().strip("|").split("|"))
            rows.append(
                (
                    re.findall(r"`([^`]+)`", paths),
                    re.findall(r"`(tests/[^`]+)`", tests),
                    re.findall(r"`make ([a-z0-9-]+)`", targets),
                )
            )
    return rows


def pytest_folders() -> dict[str, str]:
    """Make target -> the tests/<layer> folder its recipe runs pytest on."""
    makefile = (REPO / "Makefile").read_text()
    recipes = re.findall(r"^([a-zA-Z0-9_-]+):[^\n]*\n((?:\t[^\n]*\n)*)", makefile, flags=re.M)
    return {target: found.group(1) for target, recipe in recipes if (found := re.search(r"pytest (tests/\w+)", recipe))}


def test_the_module_map_names_only_files_and_targets_that_exist():
    rows = module_map()
    assert len(rows) > 20, f"{TESTING.name} lost its table under {MODULE_MAP!r}"
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, flags=re.M))
    missing = [p for paths, tests, _ in rows for p in paths + tests if not (REPO / p).exists()]
    assert missing == [], f"{TESTING.name} names what the repository lacks: {missing}"
    assert all(targets for _, _, targets in rows), "every row names the make target that runs its tests"
    unknown = sorted({t for _, _, targets in rows for t in targets} - defined)
    assert unknown == [], f"{TESTING.name} names targets the Makefile lacks: {unknown}"


def test_every_file_of_the_mapped_folders_appears_in_the_module_map():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *MAPPED],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    named = {p for paths, _, _ in module_map() for p in paths}
    folders = tuple(p for p in named if p.endswith("/"))
    unnamed_modules = [f for f in listed if f.endswith(".py") and f not in named]
    uncovered = [f for f in listed if f not in named and not f.startswith(folders)]
    assert unnamed_modules == [], f"give these modules a row (or a place in one) in {TESTING.name}: {unnamed_modules}"
    assert uncovered == [], f"these files are in no row of {TESTING.name}: {uncovered}"


def test_each_test_file_of_the_module_map_is_run_by_its_rows_targets():
    layers = pytest_folders()
    wrong = [
        f"{test} ({', '.join(targets)})"
        for _, tests, targets in module_map()
        for test in tests
        if not any(layers.get(target) == "/".join(test.split("/")[:2]) for target in targets)
    ]
    assert wrong == [], f"{TESTING.name}: no target of the row runs these tests: {wrong}"


def test_configuration_reference_is_generated_from_the_code():
    sys.path.insert(0, str(REPO / "scripts"))
    from config_reference import END, START, TARGET

    text = TARGET.read_text()
    generated = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config_reference.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert text.count(START) == 1 and text.count(END) == 1, f"{TARGET.name} needs exactly one generated reference"
    section = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == generated, f"{TARGET.relative_to(REPO)} configuration reference is stale: run `make docs`"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_make_target_named_in_the_docs_exists(doc):
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, flags=re.M))
    named = set(re.findall(r"\bmake ([a-z0-9][a-z0-9-]*)", _code(_text(doc))))
    assert named <= defined, f"{doc.name} names targets the Makefile lacks: {sorted(named - defined)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_script_test_and_module_the_docs_run_exists(doc):
    code = _code(_text(doc))
    paths = set(re.findall(r"(?<![\w/.-])((?:scripts|tests)/[\w./-]*\w)", code))
    missing = sorted(p for p in paths if not (REPO / p).exists())
    modules = set(re.findall(r"python -m ([\w.]+)", code))
    sys.path.insert(0, str(REPO))
    missing += sorted(f"python -m {m}" for m in modules if importlib.util.find_spec(m) is None)
    assert missing == [], f"{doc.name} runs what the repository lacks: {missing}"


def test_the_readme_stays_short():
    lines = len(_text(REPO / "README.md").splitlines())
    assert lines <= README_LINE_BUDGET, (
        f"README.md has {lines} lines (budget {README_LINE_BUDGET}): move detail into docs/ and link it"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_mermaid_block_is_a_known_diagram(doc):
    for block in mermaid_blocks(_text(doc)):
        assert mermaid_problems(block) == [], block


def test_the_readme_shows_the_pipeline_and_the_deployment_as_diagrams():
    assert len(mermaid_blocks(_text(REPO / "README.md"))) >= 2


def test_the_readme_pipeline_diagram_has_exactly_the_dags_edges(dag):
    pipeline = next(b for b in mermaid_blocks(_text(REPO / "README.md")) if "preflight" in b)
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    assert flowchart_edges(pipeline) == edges


@pytest.mark.parametrize(
    "block",
    [
        "flowchat LR\n  a --> b\n",
        "flowchart\n  a --> b\n",
        'flowchart LR\n  a["label --> b\n',
        "flowchart LR\n  a[label --> b\n",
        "flowchart LR\n  subgraph s\n  a --> b\n",
        "flowchart LR\n  a --> b\n  end\n",
    ],
)
def test_the_mermaid_check_rejects_broken_blocks(block):
    assert mermaid_problems(block)
