"""Golden-file comparison: `REBUILD_FIXTURES=1 make test-dags` rewrites the files instead of comparing.

A rewrite is not a pass: each rewritten file fails its test with a reminder to review the diff and
run again without REBUILD_FIXTURES.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def rebuilding() -> bool:
    return os.environ.get("REBUILD_FIXTURES") == "1"


def assert_matches_golden(name: str, data: Any) -> None:
    path = GOLDEN_DIR / name
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if rebuilding():
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text() if path.exists() else None
        path.write_text(text)
        change = "unchanged" if before == text else "rewritten"
        pytest.fail(f"REBUILD_FIXTURES=1: {path.name} {change}; review `git diff {path}` and run again without it")
    assert path.exists(), f"golden file {path} is missing: run `REBUILD_FIXTURES=1 make test-dags` and review it"
    expected = path.read_text()
    assert text == expected, (
        f"{name} differs from its golden file; if the change is intended, run "
        f"`REBUILD_FIXTURES=1 make test-dags` and review the diff.\n--- now ---\n{text}"
    )
