"""The runbook's commands (python -m tripclick_ops, make rerun-stage/backfill/pause/resume) refuse bad
arguments before they reach Airflow, with a message naming the argument and how to fix it."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO
from tripclick_ops import outcomes


class Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture()
def ops(capsys, monkeypatch):
    """The CLI in this process, as `python -m tripclick_ops` runs it, against a closed loopback port: an
    argument that got past the checks would fail on the connection instead."""
    from tripclick_ops import cli

    monkeypatch.delenv("AIRFLOW_PASSWORD", raising=False)

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
    ("make_args", "expected"),
    [
        (["rerun-stage", "DATE=2020-09-01", "STAGE=etl_to_gold"], "--local rerun-stage --date \"2020-09-01\""),
        (
            ["backfill", "FROM=2020-09-01", "TO=2020-09-03", "AIRFLOW_URL=http://127.0.0.1:8080",
             "AIRFLOW_PASSWORD_FILE=pw.json"],
            "--url http://127.0.0.1:8080 --password-file pw.json backfill --from \"2020-09-01\"",
        ),
        (["pause"], "-m tripclick_ops --local pause"),
        (["resume"], "-m tripclick_ops --local resume"),
    ],
)  # fmt: skip
def test_make_targets_run_the_cli_locally_unless_airflow_url_is_set(make_args, expected):
    done = subprocess.run(["make", "-n", *make_args], cwd=REPO, capture_output=True, text=True, check=False)
    assert expected in done.stdout, done.stdout + done.stderr


def test_a_good_day_skips_the_discard_and_any_other_state_of_it_is_a_problem():
    good = [{"task_id": s, "state": "success"} for s in outcomes.STAGES]
    assert outcomes.task_problems("success", [*good, {"task_id": "discard_partial_day", "state": "skipped"}]) == []
    assert outcomes.task_problems("success", [*good, {"task_id": "discard_partial_day", "state": "success"}]) == [
        "task discard_partial_day is 'success', expected 'skipped'"
    ]
