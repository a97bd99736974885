"""`make secrets`: input checks, no value ever printed, no key rotated by a rerun, and the Secrets it
writes are exactly the ones the rendered release refers to.

No Kubernetes API exists here, so the script's Secret store is swapped for a dict; everything
else (parsing, validation, certificate checks, generation, manifests) is the real code.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.chart import chartlib
from tests.dags.netutil import send_json

_spec = importlib.util.spec_from_file_location("make_secrets", chartlib.REPO / "scripts" / "make_secrets.py")
ms = importlib.util.module_from_spec(_spec)
sys.modules["make_secrets"] = ms  # dataclasses look their module up here
_spec.loader.exec_module(ms)

WEBHOOK = "https://hooks.slack.com/services/T0TEST/B0TEST/s3cr3tW3bh00k"
DB_PASSWORD = "db-pass-9f8e7d6c"


class MemoryStore:
    def __init__(self):
        self.secrets: dict[str, dict[str, str]] = {}

    def read(self, name):
        return dict(self.secrets[name]) if name in self.secrets else None

    def write(self, name, data):
        before = self.secrets.get(name)
        self.secrets[name] = dict(data)
        return "created" if before is None else ("unchanged" if before == data else "updated")


def _cert_pair(tmp: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test-ca"))
        .issuer_name(name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("client"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(pem))
    nokey = serialization.NoEncryption()
    (tmp / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, nokey))
    (tmp / "other-key.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(pem, serialization.PrivateFormat.PKCS8, nokey)
    )
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ssh = ed25519.Ed25519PrivateKey.generate().private_bytes(pem, serialization.PrivateFormat.OpenSSH, nokey)
    (tmp / "deploy_key").write_bytes(ssh)


SMTP_PASSWORD = "smtp-Pa55word-never-printed"


@pytest.fixture
def files(tmp_path) -> Path:
    _cert_pair(tmp_path)
    return tmp_path


def _doc(example: str, files: Path) -> dict:
    doc = chartlib.load_yaml(chartlib.REPO / "secrets" / example)
    doc["docker_tls"] = {k: str(files / f"{k}.pem") for k in ("ca", "cert", "key")}
    doc["git_ssh_key"] = str(files / "deploy_key")
    doc["connections"]["slack_webhook"] = WEBHOOK
    if doc.get("smtp"):
        doc["smtp"]["password"] = SMTP_PASSWORD
    if "connection" in doc["metadata_db"]:
        doc["metadata_db"]["connection"] = f"postgresql+psycopg2://airflow:{DB_PASSWORD}@10.20.3.10:5432/airflow"
    return doc


@pytest.mark.parametrize("example", ["production.yaml.example", "kind.yaml.example"])
def test_examples_show_every_key_and_validate_once_filled(example, files):
    doc = chartlib.load_yaml(chartlib.REPO / "secrets" / example)
    assert set(doc) == ms.TOP_KEYS
    assert set(doc["connections"]) == set(ms.CONNECTION_IDS)
    assert set(doc["docker_tls"]) == set(ms.TLS_FILES)
    plan = ms.validate(_doc(example, files), env="x")
    assert set(plan.data[ms.CONNECTIONS]) == {f"AIRFLOW_CONN_{c.upper()}" for c in ms.CONNECTION_IDS}


def test_every_problem_is_reported_by_name_without_values(files):
    doc = _doc("production.yaml.example", files)
    doc["connections"]["docker_server0"] = "tcp://10.20.1.11:2375"
    doc["connections"]["docker_server1"] = "10.20.1.12"
    doc["connections"]["spark_cluster"] = "spark://:7077"
    del doc["connections"]["slack_webhook"]
    doc["docker_tls"]["ca"] = str(files / "missing.pem")
    doc["docker_tls"]["key"] = str(files / "other-key.pem")
    doc["metadata_db"]["connection"] = f"mysql://airflow:{DB_PASSWORD}@db/airflow"
    doc["admin"]["username"] = "admin"
    doc["extra"] = 1
    with pytest.raises(ms.InputError) as caught:
        ms.validate(doc, env="production")
    problems = caught.value.problems
    for name in (
        "connections.docker_server0: port 2375",
        "connections.docker_server1: expected tcp://",
        "connections.spark_cluster: expected spark://",
        "connections.slack_webhook: missing",
        "docker_tls.ca: cannot read",
        "docker_tls.key: does not belong to docker_tls.cert",
        "metadata_db.connection: expected postgresql",
        "admin.username:",
        "extra: unknown key",
    ):
        assert any(p.startswith(name) for p in problems), (name, problems)
    assert DB_PASSWORD not in "\n".join(problems)


def test_a_file_that_is_not_a_certificate_is_named(files):
    (files / "cert.pem").write_text("not a certificate\n")
    with pytest.raises(ms.InputError) as caught:
        ms.validate(_doc("production.yaml.example", files), env="production")
    assert any(p.startswith("docker_tls.cert: not a PEM certificate") for p in caught.value.problems)


def test_a_deploy_key_with_a_passphrase_is_refused(files):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    locked = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (files / "deploy_key").write_bytes(locked)
    with pytest.raises(ms.InputError) as caught:
        ms.validate(_doc("production.yaml.example", files), env="production")
    assert caught.value.problems == [
        "git_ssh_key: the key has a passphrase; git-sync cannot type it (use a deploy key without one)"
    ]
    (files / "deploy_key").write_text("ssh-ed25519 AAAA... a public key, not the private one\n")
    with pytest.raises(ms.InputError, match="git_ssh_key: not a private key file"):
        ms.validate(_doc("production.yaml.example", files), env="production")


def test_reruns_keep_generated_keys_and_update_changed_input(files):
    store = MemoryStore()
    doc = _doc("production.yaml.example", files)
    first = ms.apply(ms.validate(doc, env="p"), store, log=lambda _: None)
    assert set(first.values()) == {"created"}
    keys = {name: store.read(name) for name in (ms.FERNET, ms.API_SECRET, ms.JWT, ms.ADMIN)}
    from cryptography.fernet import Fernet

    Fernet(store.read(ms.FERNET)["fernet-key"])  # a usable key, not just random text
    doc["connections"]["spark_cluster"] = "spark://10.20.2.11:7077"
    second = ms.apply(ms.validate(doc, env="p"), store, log=lambda _: None)
    assert {name: store.read(name) for name in keys} == keys
    assert second[ms.CONNECTIONS] == "updated"
    assert second[ms.FERNET] == second[ms.JWT] == second[ms.ADMIN] == "unchanged"
    admin = store.read(ms.ADMIN)
    assert sorted(admin) == ["password", "username"]
    assert admin["username"] == "tripclick-admin" and len(admin["password"]) >= 20


def test_a_simple_auth_manager_password_is_kept_when_the_secret_moves_to_fab(files):
    """The Secret of the Simple auth manager ({user: password} in passwords.json) becomes username and
    password without a new password: the operator's stored one keeps working."""
    store = MemoryStore()
    store.secrets[ms.ADMIN] = {"passwords.json": json.dumps({"tripclick-admin": "kept-from-before-1234"})}
    ms.apply(ms.validate(_doc("production.yaml.example", files), env="p"), store, log=lambda _: None)
    assert store.read(ms.ADMIN) == {"username": "tripclick-admin", "password": "kept-from-before-1234"}


def test_bundled_database_gets_one_generated_password(files):
    store = MemoryStore()
    ms.apply(ms.validate(_doc("kind.yaml.example", files), env="kind"), store, log=lambda _: None)
    password = store.read(ms.POSTGRESQL)["postgres-password"]
    connection = store.read(ms.METADATA_DB)["connection"]
    assert (
        connection
        == f"postgresql+psycopg2://postgres:{password}@tripclick-postgresql.airflow:5432/postgres?sslmode=disable"
    )
    ms.apply(ms.validate(_doc("kind.yaml.example", files), env="kind"), store, log=lambda _: None)
    assert store.read(ms.POSTGRESQL)["postgres-password"] == password


def test_dry_run_prints_redacted_manifests_only(files, tmp_path, capsys):
    source = tmp_path / "production.yaml"
    source.write_text(yaml.safe_dump(_doc("production.yaml.example", files)))
    assert ms.main(["--env", "production", "--file", str(source), "--dry-run"]) == 0
    out = capsys.readouterr()
    printed = out.out + out.err
    manifests = [yaml.safe_load(part) for part in printed.split("---\n")[1:]]
    names = {m["metadata"]["name"] for m in manifests if isinstance(m, dict) and "metadata" in m}
    assert names == {
        ms.CONNECTIONS,
        ms.DOCKER_TLS,
        ms.GIT_SSH,
        ms.METADATA_DB,
        ms.FERNET,
        ms.API_SECRET,
        ms.JWT,
        ms.ADMIN,
        ms.SMTP,
    }
    secrets_in_input = [WEBHOOK, DB_PASSWORD, (files / "key.pem").read_text().splitlines()[1], SMTP_PASSWORD]
    secrets_in_input.append((files / "deploy_key").read_text().splitlines()[1])
    for value in secrets_in_input:
        assert value not in printed
    assert ms.REDACTED in printed


def test_bad_input_exits_non_zero_naming_the_file(files, tmp_path, capsys):
    source = tmp_path / "broken.yaml"
    source.write_text("connections: [\n")
    assert ms.main(["--env", "broken", "--file", str(source), "--dry-run"]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert ms.main(["--env", "nosuchenv", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "secrets/nosuchenv.yaml not found" in err and "production.yaml.example" in err


def _references(objs: list[dict]) -> set[tuple[str, str | None]]:
    """(secret, key) pairs a release's pods need; key None = the whole Secret as a volume."""
    refs: set[tuple[str, str | None]] = set()
    for document in [chartlib.strip_source(obj) for obj in objs] + [chartlib.pod_template(objs)]:
        for _, node in chartlib.mappings(document):
            if "secretKeyRef" in node:
                refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            # An optional Secret (the email alerts' server) is not needed for the release to start.
            if "secretRef" in node and not node["secretRef"].get("optional"):
                refs.add((node["secretRef"]["name"], None))
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                items = node["secret"].get("items") or [{"key": None}]
                refs.update((node["secret"]["secretName"], item["key"]) for item in items)
    return refs


@pytest.mark.parametrize(
    ("combo", "example"), [("base+k3s-ec2", "production.yaml.example"), ("base+kind", "kind.yaml.example")]
)
def test_make_secrets_creates_what_the_release_refers_to(full_renders, files, combo, example):
    store = MemoryStore()
    ms.apply(ms.validate(_doc(example, files), env="x"), store, log=lambda _: None)
    refs = _references(chartlib.objects(full_renders[combo]))
    # The Connections Secret is loaded whole (envFrom): the keys the DAG reads must be what make secrets writes.
    assert {(ms.DOCKER_TLS, None), (ms.CONNECTIONS, None), (ms.JWT, "jwt-secret")} <= refs
    assert "AIRFLOW_CONN_SLACK_WEBHOOK" in store.secrets[ms.CONNECTIONS]
    missing = sorted(
        f"{name}/{key or '*'}"
        for name, key in refs
        if name not in store.secrets or (key is not None and key not in store.secrets[name])
    )
    assert missing == [], missing


def test_the_admin_secret_logs_in_through_fab(files, tmp_path, monkeypatch):
    """The script of the chart's hook Job, fed the Secret as the Job feeds it (environment only), creates an
    Admin whose stored password is a hash that checks against the Secret's password (FAB's login compares
    it the same way); a rerun (the next upgrade) leaves the user alone."""
    import subprocess

    store = MemoryStore()
    ms.apply(ms.validate(_doc("production.yaml.example", files), env="p"), store, log=lambda _: None)
    secret = store.read(ms.ADMIN)
    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    python = sys.executable
    subprocess.run([python, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    script = str(chartlib.CHART / "files" / "create_admin.py")
    job_env = env | {"ADMIN_USERNAME": secret["username"], "ADMIN_PASSWORD": secret["password"]}
    for expected in ("created", "left as it is"):
        done = subprocess.run([python, script], env=job_env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert expected in done.stdout
        assert secret["password"] not in done.stdout + done.stderr
    check = (
        "import os\n"
        "from werkzeug.security import check_password_hash\n"
        "from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder\n"
        "with get_application_builder() as ab:\n"
        "    stored = ab.sm.find_user(username=os.environ['ADMIN_USERNAME'])\n"
        "    matches = check_password_hash(stored.password, os.environ['ADMIN_PASSWORD'])\n"
        "    hashed = os.environ['ADMIN_PASSWORD'] not in stored.password\n"
        "    print(matches, [r.name for r in stored.roles], hashed)\n"
    )
    done = subprocess.run([python, "-c", check], env=job_env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True ['Admin'] True"
    wrong = job_env | {"ADMIN_PASSWORD": "not-the-password"}
    done = subprocess.run([python, "-c", check], env=wrong, capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.strip().splitlines()[-1].startswith("False")


class _FakeApiServer:
    """The few Kubernetes API calls `make secrets` makes (namespaces, Secrets), on loopback.

    Kubernetes cannot run here; this lets the script's real client code (kubeconfig loading, the
    kubernetes package's requests, stringData -> base64 data) run end to end."""

    def __init__(self):
        import http.server
        import threading

        self.namespaces: set[str] = set()
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.calls: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                send_json(self, code, body)

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def _secret(self, ns, name):
                data = server.secrets[(ns, name)]
                return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data}

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.calls.append(f"GET {self.path}")
                parts = self.path.strip("/").split("/")
                if len(parts) == 4 and parts[3] in server.namespaces:
                    return self._send(200, {"kind": "Namespace", "metadata": {"name": parts[3]}})
                if len(parts) == 6 and (parts[3], parts[5]) in server.secrets:
                    return self._send(200, self._secret(parts[3], parts[5]))
                return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

            def _store(self, ns, body):
                name = body["metadata"]["name"]
                encoded = {k: base64.b64encode(v.encode()).decode() for k, v in body.get("stringData", {}).items()}
                server.secrets[(ns, name)] = encoded
                return self._secret(ns, name)

            def do_POST(self):  # noqa: N802
                server.calls.append(f"POST {self.path}")
                parts, body = self.path.strip("/").split("/"), self._body()
                if parts == ["api", "v1", "namespaces"]:
                    server.namespaces.add(body["metadata"]["name"])
                    return self._send(201, body)
                return self._send(201, self._store(parts[3], body))

            def do_PUT(self):  # noqa: N802
                server.calls.append(f"PUT {self.path}")
                parts = self.path.strip("/").split("/")
                return self._send(200, self._store(parts[3], self._body()))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path


def test_make_secrets_end_to_end_through_the_kubernetes_client(files, tmp_path, monkeypatch, capsys):
    api = _FakeApiServer()
    try:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        source = tmp_path / "production.yaml"
        source.write_text(yaml.safe_dump(_doc("production.yaml.example", files)))
        assert ms.main(["--env", "production", "--file", str(source)]) == 0
        first = capsys.readouterr().out
        assert "created namespace airflow" in first
        assert f"{ms.JWT}: created" in first and f"{ms.CONNECTIONS}: created" in first
        stored = dict(api.secrets)
        jwt = base64.b64decode(stored[("airflow", ms.JWT)]["jwt-secret"]).decode()
        assert ms.main(["--env", "production", "--file", str(source)]) == 0
        second = capsys.readouterr().out
        assert api.secrets == stored, "a rerun changed a Secret"
        assert "created" not in second and f"{ms.FERNET}: unchanged" in second
        assert not [call for call in api.calls if call.startswith("PUT")]
        for printed in (first, second):
            assert jwt not in printed and WEBHOOK not in printed and DB_PASSWORD not in printed
    finally:
        api.httpd.shutdown()


def test_smtp_section_becomes_the_optional_secret_airflow_reads_as_an_smtp_connection(files, full_renders):
    from airflow.models.connection import Connection

    store = MemoryStore()
    ms.apply(ms.validate(_doc("production.yaml.example", files), env="p"), store, log=lambda _: None)
    conn = Connection.from_json(store.read(ms.SMTP)["AIRFLOW_CONN_SMTP_ALERTS"], conn_id="smtp_alerts")
    assert (conn.conn_type, conn.host, conn.port) == ("smtp", "email-smtp.ap-northeast-2.amazonaws.com", 587)
    assert conn.login and conn.password
    assert conn.extra_dejson["from_email"] == "airflow@tripclick.example"
    assert conn.extra_dejson["disable_tls"] is False, "STARTTLS unless the input turns it off"
    refs = {ref.get("name") for ref in _optional_secret_refs(chartlib.objects(full_renders["base+k3s-ec2"]))}
    assert refs == {ms.SMTP}


def _optional_secret_refs(objs: list[dict]) -> list[dict]:
    return [
        node["secretRef"]
        for obj in objs
        for _, node in chartlib.mappings(chartlib.strip_source(obj))
        if isinstance(node.get("secretRef"), dict) and node["secretRef"].get("optional")
    ]


def test_without_an_smtp_section_there_is_no_smtp_secret(files):
    store = MemoryStore()
    ms.apply(ms.validate(_doc("kind.yaml.example", files), env="k"), store, log=lambda _: None)
    assert ms.SMTP not in store.secrets


def test_a_malformed_smtp_section_is_reported_key_by_key(files):
    doc = _doc("production.yaml.example", files)
    doc["smtp"] = {"host": "", "port": "587", "from_email": "airflow", "login": "user", "tls": True}
    with pytest.raises(ms.InputError) as err:
        ms.validate(doc, env="p")
    problems = "\n".join(err.value.problems)
    for expected in ("smtp.tls: unknown key", "smtp.host: missing", "smtp.port:", "smtp.from_email:", "smtp.login"):
        assert expected in problems
