"""The README stays true: its configuration reference and its make targets match the code."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_configuration_reference_is_generated_from_the_code():
    readme = (REPO / "README.md").read_text()
    generated = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config_reference.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    sys.path.insert(0, str(REPO / "scripts"))
    from config_reference import END, START

    assert readme.count(START) == 1 and readme.count(END) == 1, "README needs exactly one generated reference"
    section = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == generated, "README configuration reference is stale: run `make docs`"


def test_every_make_target_named_in_the_readme_exists():
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z0-9-]+)", readme))
    assert named, "README names no make target"
    assert named <= defined, f"README names targets the Makefile lacks: {sorted(named - defined)}"
