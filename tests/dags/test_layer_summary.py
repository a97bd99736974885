"""`make test`'s last lines (scripts/layer_summary.py): one line per layer with its wall time and counts, the
totals, and exit 1 whenever a layer failed, crashed or left no result."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("layer_summary", REPO / "scripts" / "layer_summary.py")
summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary)


def _layer(results, layer, *, rc, start=1000, end=None, sessions=()):
    """What `make test` and tests/conftest.py leave behind for one layer."""
    (results / f"{layer}.rc").write_text(f"{rc}\n")
    (results / f"{layer}.start").write_text(f"{start}\n")
    if end is not None:
        (results / f"{layer}.end").write_text(f"{end}\n")
    for pid, counts in enumerate(sessions):
        session = {"exitstatus": rc, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "skip_reasons": {}} | counts
        (results / f"{layer}.{pid}.json").write_text(json.dumps(session))


def _run(results, capsys, layers, checks="lint"):
    code = summary.main(["--results", str(results), "--checks", checks, *layers])
    return code, capsys.readouterr().out.splitlines()


def test_each_layer_shows_its_wall_time_beside_its_counts_and_the_totals_add_them_up(tmp_path, capsys):
    _layer(tmp_path, "lint", rc=0, start=1000, end=1003)
    reason = {"official chart source not found": 2}
    _layer(
        tmp_path,
        "test-chart",
        rc=0,
        start=1003,
        end=1130,
        sessions=[{"passed": 40, "skipped": 2, "skip_reasons": reason}],
    )
    code, lines = _run(tmp_path, capsys, ["lint", "test-chart"])
    assert code == 0
    assert lines == [
        "== test layers",
        "lint            3 s  passed",
        "test-chart    127 s  40 passed, 0 failed, 2 skipped; skipped: official chart source not found (x2)",
        "41 passed, 0 failed, 2 skipped in 130 s",
    ]


def test_a_layer_that_never_ended_has_no_time_and_one_that_never_ran_fails_the_summary(tmp_path, capsys):
    _layer(tmp_path, "lint", rc=0, start=1000, end=1001)
    _layer(tmp_path, "test-dags", rc=0, start=1001, sessions=[{"passed": 5}])
    code, lines = _run(tmp_path, capsys, ["lint", "test-dags", "test-e2e"])
    assert code == 1
    assert lines[2] == "test-dags      - s  5 passed, 0 failed, 0 skipped"
    assert lines[3] == "test-e2e       - s  FAILED: 0 passed, 0 failed, 0 skipped; did not run, wrote no test result"
    assert lines[-1] == "6 passed, 1 failed, 0 skipped in 1 s"


@pytest.mark.parametrize(
    ("rc", "counts", "shown"),
    [
        (1, {"passed": 3, "failed": 1}, "FAILED: 3 passed, 1 failed, 0 skipped; exit 1"),
        (2, {}, "FAILED: 0 passed, 0 failed, 0 skipped; exit 2"),
        (5, {}, "FAILED: 0 passed, 0 failed, 0 skipped; exit 5, no tests collected"),
    ],
    ids=["a failing test", "a crash without a failing test", "nothing collected"],
)
def test_a_failed_layer_fails_the_summary_and_counts_as_a_failure(tmp_path, capsys, rc, counts, shown):
    _layer(tmp_path, "test-dags", rc=rc, start=1000, end=1010, sessions=[counts])
    code, lines = _run(tmp_path, capsys, ["test-dags"])
    assert code == 1
    assert lines[1] == f"test-dags     10 s  {shown}"
    assert " 0 failed" not in lines[-1]


def test_a_failed_check_layer_fails_the_summary(tmp_path, capsys):
    _layer(tmp_path, "lint", rc=2, start=1000, end=1002)
    code, lines = _run(tmp_path, capsys, ["lint"])
    assert code == 1
    assert lines[1:] == ["lint      2 s  FAILED (exit 2)", "0 passed, 1 failed, 0 skipped in 2 s"]
