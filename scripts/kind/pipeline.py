#!/usr/bin/env python3
"""The REST side of `make kind-test`: tripclick_ops's commands, runnable from anywhere.

    pipeline.py dag-ready   --url URL --password-file F        no import errors, DAG parsed
    pipeline.py run         --url URL --password-file F --date YYYY-MM-DD [--timeout S]
    pipeline.py slack-check --date YYYY-MM-DD  < messages.json  one summary, all stages success, no alert
    pipeline.py outcomes --date D --lake DIR --generated F --pg-dsn DSN   silver, bronze and gold as the local e2e

The checks are the local end-to-end tests' own (tripclick_ops.outcomes); the client is tripclick_ops.api.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tripclick_ops.cli import main  # noqa: E402 - after the repository root is importable

if __name__ == "__main__":
    sys.exit(main())
