"""Image layer fixtures: one private Docker daemon, one stand-in base and one build per session.

The build is the heavy part (a few minutes: Debian's JRE, then Airflow, the providers and pyspark from
PyPI). Its wall time and the image size are written to .state/image/figures.json and printed at the end
of the run; they are figures, never assertions.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.image import standin

FIGURES: dict[str, object] = {}


@pytest.fixture(scope="session")
def daemon():
    reason = standin.missing_prerequisites()
    if reason and reason.startswith("missing") and (standin.REPO / "scripts/system_deps.sh").exists():
        # Same installer as the demo stack and CI: Debian's docker.io and debootstrap among others.
        subprocess.run([str(standin.REPO / "scripts/system_deps.sh")], check=False)
        reason = standin.missing_prerequisites()
    if reason:
        pytest.skip(reason)
    d = standin.Daemon()
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def standin_base(daemon) -> str:
    tarball, seconds = standin.base_tarball()
    FIGURES["standin_base_seconds"] = round(seconds, 1) if seconds else "cached"
    key = standin.recipe_key()
    label = '{{index .Config.Labels "tripclick.standin.recipe"}}'
    present = daemon.docker("image", "inspect", "--format", label, standin.BASE_TAG, check=False)
    # Re-importing makes a new image id, which would invalidate the build cache of every later step.
    if present.returncode != 0 or present.stdout.strip() != key:
        changes = [arg for change in standin.BASE_CHANGES for arg in ("--change", change)]
        changes += ["--change", f"LABEL tripclick.standin.recipe={key}"]
        daemon.docker("import", *changes, str(tarball), standin.BASE_TAG)
    return standin.BASE_TAG


@pytest.fixture(scope="session")
def pip_ca() -> standin.PipCa:
    return standin.throwaway_pip_ca()


@pytest.fixture(scope="session")
def built_image(daemon, standin_base, pip_ca) -> str:
    ref = standin.make_print("image-ref")
    started = time.monotonic()
    done = standin.make_image(daemon, ref, pip_ca.bundle, standin_base)
    FIGURES["image_build_seconds"] = round(time.monotonic() - started, 1)
    log = standin.STATE / "build.log"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"`make image` on the stand-in base failed (full log: {log}):\n{tail}")
    # Images of earlier revisions would pile up under .state (1.7 GB each); this one stays as the cache.
    tags = daemon.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "tripclick-airflow").stdout.split()
    for stale in (t for t in tags if t != ref):
        daemon.docker("image", "rm", stale, check=False)
    daemon.docker("image", "prune", "--force", check=False)
    # BuildKit's cache keeps every earlier pip layer too; the newest few GB are enough to reuse this build.
    daemon.docker("builder", "prune", "--force", "--keep-storage", "4GB", check=False)
    size = daemon.docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
    FIGURES["image"] = ref
    FIGURES["image_size_mb"] = round(int(size) / 1e6)
    base_size = daemon.docker("image", "inspect", "--format", "{{.Size}}", standin_base).stdout.strip()
    FIGURES["standin_base_size_mb"] = round(int(base_size) / 1e6)
    (standin.STATE / "figures.json").write_text(json.dumps(FIGURES, indent=2))
    return ref


@pytest.fixture(scope="session")
def run_in_image(daemon, built_image):
    """Run a command in the built image: no network, as the image's own user, dags/ mounted read-only."""

    def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env_args = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
        return daemon.docker(
            "run", "--rm", "--network", "none",
            "--volume", f"{standin.REPO / 'dags'}:/opt/airflow/dags:ro",
            *env_args, built_image, *command,
            check=False, timeout=300,
        )  # fmt: skip

    return run


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "image figures (stand-in base)")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
