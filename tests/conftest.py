"""Settings shared by every test layer: Airflow never touches ~/airflow or a real database by accident."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tripclick-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))

# `make test` sets TEST_LAYER for each layer: every pytest session of that layer writes its outcome counts and
# distinct skip reasons to $TEST_RESULTS/<layer>.<pid>.json, which scripts/layer_summary.py reads. Taken out of
# the environment so that a pytest run started by a test is not counted as part of the layer.
_LAYER = os.environ.pop("TEST_LAYER", None)
_RESULTS = Path(os.environ.pop("TEST_RESULTS", REPO / ".state" / "test-results"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _LAYER:
        return
    stats = terminalreporter.stats
    reasons: dict[str, int] = {}
    for report in stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    counts = {key: len(stats.get(key, [])) for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
    result = {"layer": _LAYER, "exitstatus": int(exitstatus), **counts, "skip_reasons": reasons}
    _RESULTS.mkdir(parents=True, exist_ok=True)
    (_RESULTS / f"{_LAYER}.{os.getpid()}.json").write_text(json.dumps(result, indent=2) + "\n")
