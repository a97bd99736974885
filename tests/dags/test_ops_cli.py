"""The runbook's commands (python -m tripclick_ops, make rerun-stage/backfill/pause/resume) refuse bad
arguments before they reach Airflow, with a message naming the argument and how to fix it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from demo.stack import config
from tests.conftest import REPO
from tests.dags.netutil import LoopbackServer, send_json
from tripclick_ops import outcomes

CONNECTION_VARIABLES = ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD_FILE", "AIRFLOW_PASSWORD")


class Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture()
def ops(capsys, monkeypatch):
    """The CLI in this process, as `python -m tripclick_ops` runs it, against a closed loopback port: an
    argument that got past the checks would fail on the connection instead."""
    from tripclick_ops import cli

    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Done:
        try:
            code = cli.main(["--url", "http://127.0.0.1:9", *args])
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return run


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["rerun-stage", "--date", "2020-13-01", "--stage", "etl_to_gold"], "'2020-13-01' is not a date"),
        (["rerun-stage", "--date", "01/09/2020", "--stage", "etl_to_gold"], "write it as YYYY-MM-DD"),
        (["rerun-stage", "--date", "2020-09-01", "--stage", "etl_to_silver"], "unknown stage 'etl_to_silver'"),
        (["rerun-stage", "--date", "2020-09-01"], "the following arguments are required: --stage"),
        (["backfill", "--from", "2020-09-31", "--to", "2020-10-02"], "'2020-09-31' is not a date"),
        (["backfill", "--from", "2020-09-01", "--to", "2020-09-03", "--max-active-runs", "0"], "1 or more"),
        (["backfill", "--from", "2020-09-01", "--to", "2020-09-03", "--reprocess", "all"], "invalid choice: 'all'"),
    ],
)
def test_a_bad_argument_is_named_with_its_fix(ops, args, expected):
    done = ops(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "cannot reach" not in done.stderr


def test_an_unknown_stage_lists_the_stages(ops):
    done = ops("rerun-stage", "--date", "2020-09-01", "--stage", "gold")
    assert done.returncode == 2
    assert "choose one of " + ", ".join(outcomes.STAGES) in done.stderr


def test_a_reversed_range_says_to_swap_before_connecting(ops):
    done = ops("backfill", "--from", "2020-09-03", "--to", "2020-09-01", "--password-file", "/nonexistent")
    assert done.returncode == 1
    assert "--from 2020-09-03 is after --to 2020-09-01: swap them" in done.stderr


def test_no_password_says_where_to_give_it(ops):
    done = ops("pause")
    assert done.returncode == 1
    assert "pass --password-file or set AIRFLOW_PASSWORD" in done.stderr


def test_the_stages_are_the_ones_the_summary_reports():
    from tripclick.notify import SUMMARY_STAGES

    assert tuple(SUMMARY_STAGES) == outcomes.STAGES


@pytest.mark.parametrize(
    ("make_args", "expected", "local"),
    [
        (["rerun-stage", "DATE=2020-09-01", "STAGE=etl_to_gold"], "-m tripclick_ops rerun-stage --date \"2020-09-01\"",
         True),
        (
            ["backfill", "FROM=2020-09-01", "TO=2020-09-03", "AIRFLOW_URL=http://127.0.0.1:8080",
             "AIRFLOW_PASSWORD_FILE=pw.json"],
            "-m tripclick_ops --url http://127.0.0.1:8080 --password-file pw.json backfill --from \"2020-09-01\"",
            False,
        ),
        (["pause"], "-m tripclick_ops pause", True),
        (["resume"], "-m tripclick_ops resume", True),
    ],
)  # fmt: skip
def test_make_targets_run_the_cli_locally_unless_airflow_url_is_set(make_args, expected, local):
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    done = subprocess.run(["make", "-n", *make_args], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert expected in done.stdout, done.stdout + done.stderr
    assert ("-m demo.stack ops-env" in done.stdout) == local, done.stdout


def test_make_on_the_local_stack_logs_in_with_the_url_and_password_file_the_stack_hands_out(tmp_path):
    """`make pause` without AIRFLOW_URL, as an operator of the local stack types it: the client logs in at the
    stack's api-server port as its admin, with the password of the stack's state, read from a file only its owner
    reads. A stand-in on that port (the stack shifted to a free one) refuses the login, so nothing is paused."""
    logins = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            logins.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            send_json(self, 401, {"detail": "Invalid credentials"})

        def log_message(self, *args):
            pass

    for offset in range(1000, 20001, 1000):
        try:
            server = LoopbackServer(Handler, port=config._BASE_PORTS["airflow_api"] + offset)
            break
        except OSError:
            continue
    else:
        pytest.fail("no free port for the api-server stand-in at any port offset of the stack")
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    env |= {"TRIPCLICK_DEMO_STATE": str(tmp_path), "TRIPCLICK_DEMO_PORT_OFFSET": str(offset)}
    with server:
        done = subprocess.run(
            ["make", "-o", ".venv/.installed-stamp", "pause", f"PY={sys.executable}"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    password = json.loads((tmp_path / "secrets.json").read_text())["admin_password"]
    assert logins == [("/auth/token", {"username": config.ADMIN_USER, "password": password})], done.stderr
    assert f"login as {config.ADMIN_USER!r} at http://127.0.0.1:{server.port}: HTTP 401" in done.stderr
    assert done.returncode != 0
    assert (tmp_path / "admin-password").read_text() == password
    assert stat.S_IMODE((tmp_path / "admin-password").stat().st_mode) == 0o600


def test_a_good_day_skips_the_discard_and_any_other_state_of_it_is_a_problem():
    good = [{"task_id": s, "state": "success"} for s in outcomes.STAGES]
    assert outcomes.task_problems("success", [*good, {"task_id": "discard_partial_day", "state": "skipped"}]) == []
    assert outcomes.task_problems("success", [*good, {"task_id": "discard_partial_day", "state": "success"}]) == [
        "task discard_partial_day is 'success', expected 'skipped'"
    ]
