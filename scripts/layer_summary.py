"""One line per test layer of `make test`, then the totals; exit 1 if any layer failed or left no result.

    layer_summary.py --results DIR [--checks "lint lint-image"] LAYER...

For every LAYER, DIR holds <layer>.rc (the exit code of `make <layer>`), <layer>.start and <layer>.end (when
it started and ended, in epoch seconds), all three written by `make test`, and, for a pytest layer, one
<layer>.<pid>.json per pytest session (written by the hook in tests/conftest.py): outcome counts and the
distinct skip reasons. Each layer's line starts with its wall time. A check layer (--checks: a linter, no
pytest) is passed or failed by its exit code alone. A layer fails if its exit code is not 0, if it has a
failed or erroring test, if pytest collected nothing (exit 5), or if it left no result at all.

The last line is the totals, `N passed, N failed, N skipped in N s`: tests, plus one per check layer, plus
one failure for each layer that failed without a failing test to show for it (so it is never "0 failed"),
and the layers' wall times added up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NO_TESTS_COLLECTED = 5


def layer_result(results: Path, layer: str, check: bool) -> tuple[str, bool, dict[str, int]]:
    """(line, failed, counts) for one layer."""
    rc_file = results / f"{layer}.rc"
    rc = int(rc_file.read_text().strip()) if rc_file.is_file() else None
    if check:
        ok = rc == 0
        state = "passed" if ok else ("did not run" if rc is None else f"FAILED (exit {rc})")
        return state, not ok, {"passed": int(ok), "failed": int(not ok), "skipped": 0}

    sessions = [json.loads(path.read_text()) for path in sorted(results.glob(f"{layer}.*.json"))]
    counts = {key: sum(s[key] for s in sessions) for key in ("passed", "failed", "error", "skipped")}
    reasons: dict[str, int] = {}
    for session in sessions:
        for reason, count in session["skip_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    problems = []
    if rc is None:
        problems.append("did not run")
    elif rc != 0:
        problems.append(f"exit {rc}")
    if not sessions:
        problems.append("wrote no test result")
    if any(s["exitstatus"] == NO_TESTS_COLLECTED for s in sessions):
        problems.append("no tests collected")
    failed = counts["failed"] + counts["error"]
    line = f"{counts['passed']} passed, {failed} failed, {counts['skipped']} skipped"
    if counts["error"]:
        line += f" ({counts['error']} of them errors outside a test's body)"
    if problems or failed:
        line = f"FAILED: {line}" + (f"; {', '.join(problems)}" if problems else "")
    if reasons:
        line += "; skipped: " + "; ".join(f"{reason} (x{count})" for reason, count in sorted(reasons.items()))
    bad = bool(problems or failed)
    return line, bad, {"passed": counts["passed"], "failed": max(failed, int(bad)), "skipped": counts["skipped"]}


def wall_seconds(results: Path, layer: str) -> int | None:
    """How long `make <layer>` ran, from the times `make test` wrote around it; None if it did not run."""
    try:
        return int((results / f"{layer}.end").read_text()) - int((results / f"{layer}.start").read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="folder the layers wrote their results to")
    parser.add_argument("--checks", default="", help="layers that are plain checks (no pytest), space-separated")
    parser.add_argument("layers", nargs="+", help="every layer, in the order they ran")
    args = parser.parse_args(argv)
    checks = set(args.checks.split())

    totals = {"passed": 0, "failed": 0, "skipped": 0}
    any_failed = False
    seconds = 0
    width = max(map(len, args.layers))
    print("== test layers")
    for layer in args.layers:
        line, failed, counts = layer_result(args.results, layer, layer in checks)
        any_failed |= failed
        for key in totals:
            totals[key] += counts[key]
        wall = wall_seconds(args.results, layer)
        seconds += wall or 0
        print(f"{layer:<{width}}  {'-' if wall is None else wall:>5} s  {line}")
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped in {seconds} s")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
