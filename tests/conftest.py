"""Settings shared by every test layer: Airflow never touches ~/airflow or a real database by accident."""

from __future__ import annotations

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
