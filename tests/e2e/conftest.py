"""End-to-end layer: the real local stack (demo/stack), started once per session and stopped at the end,
even when a test fails. Needs root and the system packages of scripts/system_deps.sh; without them
every test here is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e import helpers


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the stack starts its own dockerd and runs PostgreSQL as the postgres user"
    r = subprocess.run(
        ["bash", "scripts/system_deps.sh", "--check"], cwd=helpers.REPO, capture_output=True, text=True, check=False
    )
    if r.returncode:
        return f"system packages missing (run `make system-deps`): {r.stdout.strip()}"
    return None


def _stack_command(command: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo.stack", command],
        cwd=helpers.REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def stack():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        r = _stack_command("up", timeout=1500)
        print(r.stdout)
        if r.returncode:
            pytest.fail(f"the demo stack did not come up:\n{r.stdout}\n{r.stderr}")
        stack = helpers.Stack()
        stack.forget_stored_variables()
        yield stack
    finally:
        try:
            down = _stack_command("down", timeout=300)
            print(down.stdout, down.stderr)
        except subprocess.TimeoutExpired as exc:
            printed = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
            pytest.fail(f"`demo.stack down` did not finish within {exc.timeout:.0f}s; it had printed:\n{printed}")
        left = helpers.leftover_processes()
        if left:
            pytest.fail("processes of the stack are still running after `demo.stack down`:\n" + "\n".join(left))


# Runs that several tests read, each made once per session: every run costs minutes on this 2-core machine.
GOOD_DAY = "2020-09-02"
DAEMON_DOWN_DAY = "2020-08-01"
DAEMON_DOWN_SERVER = "server1"


@pytest.fixture(scope="session")
def good_day(stack) -> tuple[helpers.Run, dict]:
    """A good day end to end: (the run, what the generator wrote for it)."""
    stack.reset_day(GOOD_DAY)
    generated = stack.generate(GOOD_DAY)
    return stack.run(GOOD_DAY), generated


@pytest.fixture(scope="session")
def daemon_down_day(stack) -> helpers.Run:
    """A day whose run finds server1's Docker daemon down throughout: preflight fails after every try."""
    stack.reset_day(DAEMON_DOWN_DAY)
    stack.generate(DAEMON_DOWN_DAY)
    daemon = stack.docker(DAEMON_DOWN_SERVER)
    daemon.down()
    try:
        return stack.run(DAEMON_DOWN_DAY)
    finally:
        daemon.up()
