"""hadolint passes on image/Dockerfile, and every rule the config ignores carries its reason."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.image import standin

CONFIG = standin.REPO / "image" / ".hadolint.yaml"


def test_hadolint_passes():
    done = subprocess.run(
        [str(standin.REPO / ".venv/bin/hadolint"), "--config", str(CONFIG), str(standin.REPO / "image/Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_finding_fails_and_every_ignore_is_justified():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["failure-threshold"] == "info"
    lines = CONFIG.read_text().splitlines()
    for rule in config.get("ignored", []):
        at = next(i for i, line in enumerate(lines) if re.fullmatch(rf"\s*-\s*{rule}\s*", line))
        reason = []
        for line in reversed(lines[:at]):
            if not line.strip().startswith("#"):
                break
            reason.append(line)
        assert reason and rule in "".join(reason), f"ignored rule {rule} has no comment above it saying why"
