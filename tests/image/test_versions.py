"""Versions are written once, in requirements.txt; the Dockerfile and the Makefile must agree with it."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.image import standin

DOCKERFILE = standin.REPO / "image" / "Dockerfile"
# The official image's Python for this project; the stand-in's 3.11 is a documented difference.
OFFICIAL_PYTHON = "3.12"


def global_args(text: str) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM itself can use)."""
    args = {}
    for line in text.split("\nFROM ", 1)[0].splitlines():
        match = re.match(r"^ARG\s+(\w+)=(\S+)\s*$", line)
        if match:
            args[match.group(1)] = match.group(2).strip('"')
    return args


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def instructions(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_dockerfile_default_airflow_version_is_the_requirements_pin():
    assert global_args(DOCKERFILE.read_text())["AIRFLOW_VERSION"] == standin.airflow_pin(), (
        "image/Dockerfile's ARG AIRFLOW_VERSION default differs from apache-airflow== in requirements.txt; "
        "change the Dockerfile default (requirements.txt is the source of truth)"
    )


def test_default_base_is_the_official_python_312_image_of_that_version():
    args = global_args(DOCKERFILE.read_text())
    assert expand(args["BASE_IMAGE"], args) == f"apache/airflow:{standin.airflow_pin()}-python{OFFICIAL_PYTHON}"
    assert instructions(DOCKERFILE.read_text())[len(args)] == "FROM ${BASE_IMAGE}"


def test_make_image_tags_with_the_pin_and_the_git_revision():
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=standin.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    ref = standin.make_print("image-ref")
    assert re.fullmatch(rf"tripclick-airflow:{re.escape(standin.airflow_pin())}-{rev}(-dirty)?", ref), ref


@pytest.mark.parametrize("broken", ["apache-airflow>=3.3", "# no airflow line"])
def test_make_image_refuses_requirements_without_an_airflow_pin(tmp_path, broken):
    for name in ("Makefile", "requirements-dev.txt"):
        (tmp_path / name).write_text((standin.REPO / name).read_text())
    (tmp_path / "requirements.txt").write_text(broken + "\n")
    done = subprocess.run(
        ["make", "--no-print-directory", "image", "IMAGE_DOCKER=false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "requirements.txt has no apache-airflow==<version> line" in done.stderr


def test_the_image_installs_requirements_txt_and_nothing_else():
    steps = instructions(DOCKERFILE.read_text())
    copies = [s for s in steps if s.startswith("COPY ")]
    assert copies == ["COPY requirements.txt /opt/tripclick/requirements.txt"]
    pip = [s for s in steps if "pip install" in s]
    assert len(pip) == 1
    assert re.search(r"pip install --no-cache-dir -r /opt/tripclick/requirements.txt(\s|$)", pip[0]), pip[0]
    apt = [s for s in steps if "apt-get install" in s]
    assert len(apt) == 1
    assert re.search(r"apt-get install -y --no-install-recommends default-jre-headless\s+\&\&", apt[0]), apt[0]
    assert "requirements-dev" not in DOCKERFILE.read_text()


def test_the_image_ends_as_the_numeric_airflow_user():
    users = [s for s in instructions(DOCKERFILE.read_text()) if s.startswith("USER ")]
    assert users[-1] == "USER 50000"


def test_dockerignore_sends_only_what_the_dockerfile_copies():
    patterns = [
        line.strip()
        for line in (standin.REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the build context is the repository root; start from nothing"
    copied = {s.split()[1] for s in instructions(DOCKERFILE.read_text()) if s.startswith("COPY ")}
    assert {p.removeprefix("!") for p in patterns[1:]} == copied


def test_chart_and_values_name_the_same_airflow_version():
    """The chart's appVersion and the overlays' airflowVersion describe the image; they follow the pin too."""
    chart = yaml.safe_load((standin.REPO / "chart" / "Chart.yaml").read_text())
    base = yaml.safe_load((standin.REPO / "values" / "base.yaml").read_text())
    assert str(chart["appVersion"]) == standin.airflow_pin(), "chart/Chart.yaml appVersion"
    assert str(base["airflow"]["airflowVersion"]) == standin.airflow_pin(), "values/base.yaml airflow.airflowVersion"
