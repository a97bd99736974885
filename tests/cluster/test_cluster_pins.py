"""The cluster's pins, without building or starting anything: versions.env and the wrapper modules agree, and
no module the cluster builds from carries an AGPL licence."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cluster import build, settings


def test_every_wrapper_requires_the_version_versions_env_names():
    assert build.check_pins() == []


def test_every_version_in_versions_env_says_why():
    lines = settings.VERSIONS_FILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"[A-Z_]+=\S+", line):
            assert i > 0 and lines[i - 1].startswith("# "), f"{line}: no comment line above it says why"


def test_kubernetes_wrapper_replaces_every_staging_module_with_the_same_release():
    text = (settings.GOMOD / "kubernetes" / "go.mod").read_text()
    minor = settings.versions()["KUBERNETES"].lstrip("v").split(".", 1)[1]
    replaced = re.findall(r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", text, re.M)
    assert len(replaced) > 30
    for old, new, version in replaced:
        assert old == new and version == f"v0.{minor}", f"{old} => {new} {version}"


def _module_dirs() -> list[Path]:
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    if not modcache:
        pytest.skip("no Go toolchain")
    dirs = []
    for gosum in settings.GOMOD.glob("*/go.sum"):
        for line in gosum.read_text().splitlines():
            module, version, _ = line.split()
            if version.endswith("/go.mod"):
                continue
            escaped = re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), f"{module}@{version}")
            d = Path(modcache, escaped)
            if d.is_dir():
                dirs.append(d)
    return dirs


def test_no_module_the_cluster_builds_from_is_agpl():
    dirs = _module_dirs()
    if not dirs:
        pytest.skip("the modules are not in the Go module cache yet: make cluster-build")
    agpl = []
    for d in dirs:
        for licence in [p for p in [*d.glob("LICEN[CS]E*"), *d.glob("COPYING*")] if p.is_file()]:
            # The licence's own title; MPL-2.0 names the AGPL further down as a compatible licence.
            if "AFFERO" in licence.read_text(errors="replace")[:300].upper():
                agpl.append(str(d))
    assert agpl == []
