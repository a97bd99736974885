"""Where everything lives and which loopback port each service takes.

One place for paths and ports so the stack, the demo and the end-to-end tests agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("TRIPCLICK_DEMO_STATE", REPO / ".state" / "demo")).resolve()
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# Loopback ports, chosen away from the usual defaults so a developer's own PostgreSQL, Docker or Spark keeps
# working beside the demo. TRIPCLICK_DEMO_PORT_OFFSET (a multiple of 1000) shifts every one of them, so a second
# stack (with its own TRIPCLICK_DEMO_STATE) can run beside the first.
_BASE_PORTS = {
    "postgres": 54329,
    "server0": 23760,
    "server1": 23761,
    "spark_master": 27077,
    "spark_master_ui": 28180,
    "spark_worker_ui": 28181,
    "slack": 28090,
    "airflow_api": 28080,
    "spark_driver": 41000,
    "spark_blockmanager": 41001,
    "worker_log_server": 28793,
    "triggerer_log_server": 28794,
    "smtp": 28025,
    "statsd": 28045,
    "statsd_exporter": 28125,
    "statsd_exporter_web": 28102,
    "prometheus": 29090,
    "alertmanager": 29093,
}


def _port_offset() -> int:
    raw = os.environ.get("TRIPCLICK_DEMO_PORT_OFFSET", "0")
    if not raw.isdigit() or int(raw) % 1000 or int(raw) > 20000:
        raise SystemExit(
            f"TRIPCLICK_DEMO_PORT_OFFSET={raw!r}: use a multiple of 1000 from 0 to 20000 (every port of the stack "
            "shifts by it)"
        )
    return int(raw)


PORTS = {name: port + _port_offset() for name, port in _BASE_PORTS.items()}

DOCKER_SERVERS = ("server0", "server1")
PG_USER_AIRFLOW = "airflow"
PG_USER_GOLD = "tripclick"
PG_DB_AIRFLOW = "airflow"
PG_DB_GOLD = "tripclick_gold"
ADMIN_USER = "admin"
SLACK_PATH = "/services/T000/B000/XXXX"
# Alertmanager's own webhook, as production gives the alerts a channel of their own beside Airflow's.
SLACK_ALERTS_PATH = "/services/T000/B001/ALERTS"
DAG_ID = "tripclick_daily_pipeline"


def state(*parts: str) -> Path:
    return STATE.joinpath(*parts)


def socket_dir(*parts: str) -> Path:
    """A folder for unix sockets: under .state when the path is short enough, else under /run (a unix socket
    path is limited to 107 bytes, and a CI checkout can live deep in the file system)."""
    path = state(*parts)
    if len(str(path)) > 60:
        digest = hashlib.sha1(str(STATE).encode()).hexdigest()[:10]
        path = Path("/run") / f"tripclick-demo-{digest}" / Path(*parts)
    return path


def tls_dir() -> Path:
    return state("tls")


def client_tls_dir() -> Path:
    return state("tls", "client")


def untrusted_tls_dir() -> Path:
    return state("tls", "untrusted-client")


def landing_dir() -> Path:
    return state("landing")


def lake_root() -> Path:
    return state("lake")


def server_data_dir(server: str) -> Path:
    return state("servers", server, "data")


def load_secrets() -> dict[str, str]:
    """Generated passwords and keys, kept in .state (ignored by git) and reused on every `up`."""
    path = state("secrets.json")
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
    changed = False
    for key, make in (
        ("pg_airflow_password", lambda: secrets.token_urlsafe(18)),
        ("pg_gold_password", lambda: secrets.token_urlsafe(18)),
        ("admin_password", lambda: secrets.token_urlsafe(12)),
        ("jwt_secret", lambda: secrets.token_urlsafe(32)),
        ("api_secret_key", lambda: secrets.token_urlsafe(32)),
        ("fernet_key", _fernet_key),
    ):
        if key not in data:
            data[key] = make()
            changed = True
    if changed:
        _write_private(path, json.dumps(data, indent=2))
    return data


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def gold_dsn() -> str:
    """libpq DSN of the gold database without the password (that comes from PGPASSFILE)."""
    return f"host={HOST} port={PORTS['postgres']} dbname={PG_DB_GOLD} user={PG_USER_GOLD}"


def slack_url() -> str:
    return f"http://{HOST}:{PORTS['slack']}{SLACK_PATH}"


def slack_alerts_url() -> str:
    return f"http://{HOST}:{PORTS['slack']}{SLACK_ALERTS_PATH}"


def prometheus_url() -> str:
    return f"http://{HOST}:{PORTS['prometheus']}"


def alertmanager_url() -> str:
    return f"http://{HOST}:{PORTS['alertmanager']}"


def airflow_url() -> str:
    return f"http://{HOST}:{PORTS['airflow_api']}"


def admin_password_file() -> Path:
    """The admin password alone in a file only its owner reads, as an operator keeps Secret tripclick-admin's."""
    path = state("admin-password")
    password = load_secrets()["admin_password"]
    if not path.exists() or path.read_text() != password:
        _write_private(path, password)
    return path


def ops_env() -> dict[str, str]:
    """What the runbook's client (python -m tripclick_ops) reads to reach this stack: the same variables that
    point it at production (docs/operations.md)."""
    return {
        "AIRFLOW_URL": airflow_url(),
        "AIRFLOW_USER": ADMIN_USER,
        "AIRFLOW_PASSWORD_FILE": str(admin_password_file()),
    }


def smtp_store() -> Path:
    """JSON lines of the mails the stack's SMTP server accepted (demo/smtp_receiver)."""
    return state("smtp", "messages.jsonl")


def statsd_store() -> Path:
    """Every StatsD line Airflow sent to the stack's capture (demo/statsd_capture)."""
    return state("statsd", "lines.txt")
