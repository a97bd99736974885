"""The demo's stand-ins on their own (no stack needed): the Slack webhook protocol, the producer's contract,
the generator's determinism and how the stack stops a process."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import xxhash

from demo.datagen.generate import generate_day, write_day
from demo.stack import proc
from tests.e2e import helpers

PRODUCER_SRC = helpers.REPO / "workloads" / "producer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver(tmp_path):
    port = _free_port()
    store = tmp_path / "messages.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.slack_receiver", "--port", str(port), "--store", str(store)],
        cwd=helpers.REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(url: str, body: bytes, ctype: str = "application/json") -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_slack_receiver_speaks_the_incoming_webhook_protocol(receiver):
    hook = f"{receiver}/services/T000/B000/XXXX"
    assert _post(hook, json.dumps({"text": "hello"}).encode()) == (200, "ok")
    assert _post(hook, json.dumps({"blocks": [{"type": "divider"}]}).encode()) == (200, "ok")
    assert _post(f"{receiver}/services/T/B/wrong", json.dumps({"text": "x"}).encode()) == (404, "no_service")
    assert _post(hook, b"{not json") == (400, "invalid_payload")
    assert _post(hook, b"[1, 2]") == (400, "invalid_payload")
    assert _post(hook, json.dumps({"username": "x"}).encode()) == (400, "no_text")
    with urllib.request.urlopen(f"{receiver}/messages", timeout=5) as resp:
        stored = json.loads(resp.read())
    assert [m["payload"] for m in stored] == [{"text": "hello"}, {"blocks": [{"type": "divider"}]}]


def test_slack_provider_hook_delivers_to_the_receiver(receiver):
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    conn = json.dumps({"conn_type": "slackwebhook", "password": f"{receiver}/services/T000/B000/XXXX"})
    os.environ["AIRFLOW_CONN_SLACK_E2E_PROBE"] = conn
    try:
        SlackWebhookHook(slack_webhook_conn_id="slack_e2e_probe").send(text="from the provider")
    finally:
        del os.environ["AIRFLOW_CONN_SLACK_E2E_PROBE"]
    with urllib.request.urlopen(f"{receiver}/messages", timeout=5) as resp:
        assert [m["payload"]["text"] for m in json.loads(resp.read())] == ["from the provider"]


def _producer(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "producer.producer", *args],
        cwd=PRODUCER_SRC,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_producer_lands_whole_files_and_rejects_bad_input(tmp_path):
    day = "2020-01-02"
    write_day(dt.date.fromisoformat(day), generate_day(dt.date.fromisoformat(day), 300, seed=1), tmp_path / "servers")
    data = tmp_path / "servers" / "server0" / "data"
    landing = tmp_path / "landing"
    landing.mkdir()
    sent = (data / f"date={day}" / "events.json").read_text().splitlines()
    args = ["--file", str(data / f"date={day}" / "events.json"), "--mode", "realtime", "--topic", "t"]
    ok = _producer(args, {"LANDING_DIR": str(landing), "TRIPCLICK_REPLAY_SPEED": "100000"})
    assert ok.returncode == 0, ok.stderr
    files = sorted((landing / f"event_date={day}").iterdir())
    assert files and not [f for f in files if f.name.startswith(".")]  # no temporary file left behind
    landed = [line for f in files for line in f.read_text().splitlines()]
    assert sorted(json.loads(x)["dedup_key"] for x in landed) == sorted(json.loads(x)["dedup_key"] for x in sent)

    missing = _producer(
        ["--file", str(data / "date=2020-01-03" / "events.json"), "--mode", "batch"], {"LANDING_DIR": str(landing)}
    )
    assert missing.returncode == 3
    assert "date=2020-01-03/events.json does not exist" in missing.stderr and f"date={day}" in missing.stderr

    corrupt = data / "date=2020-01-04" / "events.json"
    corrupt.parent.mkdir()
    corrupt.write_text(sent[0] + "\n{truncated\n")
    bad = _producer(["--file", str(corrupt), "--mode", "batch"], {"LANDING_DIR": str(landing)})
    assert bad.returncode == 3 and "line 2: not valid JSON" in bad.stderr
    assert not (landing / "event_date=2020-01-04").exists()  # nothing sent from a bad file

    no_transport = _producer(args, {})
    assert no_transport.returncode == 2 and "KAFKA_BROKERS" in no_transport.stderr
    bad_speed = _producer(args, {"LANDING_DIR": str(landing), "TRIPCLICK_REPLAY_SPEED": "fast"})
    assert bad_speed.returncode == 2 and "TRIPCLICK_REPLAY_SPEED" in bad_speed.stderr


def test_generator_is_deterministic_and_splits_sessions_by_md5(tmp_path):
    day = dt.date(2020, 3, 4)
    first = generate_day(day, 1000, seed=7)
    assert first == generate_day(day, 1000, seed=7)
    assert first != generate_day(day, 1000, seed=8)
    for rec in first:
        ts = dt.datetime.fromisoformat(rec["event_ts"].replace("Z", "+00:00"))
        assert rec["DateCreated"] == f"/Date({int(ts.timestamp() * 1000)})/"
        assert rec["event_date"] == day.isoformat() == ts.date().isoformat()
        assert rec["ClinicalAreas"].startswith(",")
        # The contract (BRIEF section 2): xxh64 of "<SessionId>|<DocumentId>|<event_ts>", computed here with the
        # xxhash package itself, not with the generator's own function.
        expected = xxhash.xxh64(f"{rec['SessionId']}|{rec['DocumentId']}|{rec['event_ts']}".encode()).hexdigest()
        assert rec["dedup_key"] == expected, rec
    assert len({r["dedup_key"] for r in first}) < len(first)  # some clicks logged twice
    summary = write_day(day, first, tmp_path)
    seen = []
    for i in (0, 1):
        path = Path(summary["servers"][f"server{i}"]["path"])
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records, f"server{i} got no records"
        for rec in records:
            # md5(SessionId) % 2, with the digest read as one big-endian integer.
            assert int(hashlib.md5(rec["SessionId"].encode()).hexdigest(), 16) % 2 == i, rec["SessionId"]  # noqa: S324
        seen.extend(records)
    # Every record went to exactly one server, none lost or added.
    assert sorted(map(json.dumps, seen)) == sorted(map(json.dumps, first))


def test_stopping_a_service_does_not_wait_for_its_parent_to_reap_it(capsys):
    # The stack's services outlive `demo.stack up`, so whatever init the machine runs is their parent; one
    # that never reaps leaves each stopped service a zombie. Here the parent is a Python that never calls wait.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(parent.stdout.readline())
        assert proc.stop_pid("sleeper", pid, timeout=20)
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "the child was reaped; the test proves nothing"
        assert "ignored SIGTERM" not in capsys.readouterr().out
        assert not proc.pid_alive(pid)
    finally:
        parent.kill()
        parent.wait(timeout=10)


def _supervised(tmp_path: Path, child: str, **pauses: float) -> tuple[subprocess.Popen, Path]:
    """demo/stack/supervise.py keeping `child` (Python source) running, its pauses shortened; each start of the
    child appends its PID to the returned file."""
    starts = tmp_path / "starts"
    script = tmp_path / "child.py"
    script.write_text(f"import os, sys, time\nSTARTS = {str(starts)!r}\n{child}")
    setup = "".join(f"supervise.{k} = {v}\n" for k, v in pauses.items())
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys\nsys.path.insert(0, {str(helpers.REPO / 'demo' / 'stack')!r})\nimport supervise\n{setup}"
            f"sys.exit(supervise.main(['child', '--', {sys.executable!r}, {str(script)!r}]))",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return supervisor, starts


def _pids(starts: Path, n: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(x) for x in starts.read_text().split()] if starts.exists() else []
        if len(pids) >= n:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} starts within {timeout:.0f}s")


# The first start exits as a scheduler does when its database goes away; the second one stays up.
CRASH_ONCE = (
    "first = not os.path.exists(STARTS)\n"
    "with open(STARTS, 'a') as f:\n"
    "    f.write(f'{os.getpid()}\\n')\n"
    "sys.exit(1) if first else time.sleep(600)\n"
)


def test_a_supervised_component_that_exits_is_started_again_and_stops_with_its_supervisor(tmp_path):
    supervisor, starts = _supervised(tmp_path, CRASH_ONCE, FIRST_PAUSE_S=0.2)
    try:
        first, second = _pids(starts, 2)
        assert not proc.pid_alive(first) and proc.pid_alive(second)
        assert proc.stop_pid("supervised", supervisor.pid, timeout=20)
        assert supervisor.wait(timeout=20) is not None
        assert not proc.pid_alive(second), "the component outlived its supervisor"
        assert f"pid {first} exited with code 1; restart 1 in 0s" in supervisor.stdout.read()
    finally:
        supervisor.kill()


def test_a_component_that_ignores_the_stop_signal_is_killed_after_the_grace(tmp_path):
    stubborn = (
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(STARTS, 'a').write(f'{os.getpid()}\\n')\ntime.sleep(600)\n"
    )
    supervisor, starts = _supervised(tmp_path, stubborn, STOP_GRACE_S=1)
    try:
        (pid,) = _pids(starts, 1)
        assert proc.stop_pid("supervised", supervisor.pid, timeout=20)
        assert not proc.pid_alive(pid)
        assert f"pid {pid} still running 1s after the stop signal; killing it" in supervisor.stdout.read()
    finally:
        supervisor.kill()
