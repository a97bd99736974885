#!/usr/bin/env python3
"""Create or update every Kubernetes Secret the release needs, from one untracked file.

    make secrets ENV=production            # reads secrets/production.yaml
    make secrets ENV=kind DRY_RUN=1        # prints the Secret manifests, values redacted

The input file (copy secrets/<env>.yaml.example) holds the connections, paths to the Docker TLS
client files and the git deploy key, and the metadata database URL. Keys that can be generated
(fernet, api, JWT, the admin password, the bundled PostgreSQL's password) are generated only
when the Secret does not hold them yet, so a rerun never rotates a key by accident.

The whole file is checked first and every problem is reported by name; nothing is written
unless it is all valid. No secret value is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets as random  # stdlib; this file is not named secrets.py for that reason
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "dags"))

from tripclick import config as dag_config  # noqa: E402  (the DAG's Connections: their ids and env names)

SECRETS_DIR = REPO / "secrets"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tripclick-secrets"}
REDACTED = "<redacted>"

# Secret names and keys the overlays refer to (values/base.yaml, values/kind.yaml).
CONNECTIONS = "tripclick-connections"
DOCKER_TLS = "tripclick-docker-tls"
GIT_SSH = "tripclick-git-ssh"
METADATA_DB = "tripclick-metadata-db"
POSTGRESQL = "tripclick-postgresql"
FERNET = "tripclick-fernet-key"
API_SECRET = "tripclick-api-secret-key"
JWT = "tripclick-jwt-secret"
ADMIN = "tripclick-admin"
# Optional: the email alerts' server. Pods load it with envFrom optional, so no input section, no Secret.
SMTP = "tripclick-smtp"

# The Connections the DAG needs (dags/tripclick/config.py); the optional one (email) has its own section and Secret.
CONNECTION_IDS = tuple(spec.conn_id for spec in dag_config.CONNECTIONS if not spec.optional)
SMTP_ENV = dag_config.connection_env_name(dag_config.SMTP_CONN_ID)
TLS_FILES = {"ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
TOP_KEYS = {"namespace", "release", "connections", "docker_tls", "git_ssh_key", "metadata_db", "admin", "smtp"}
# The first UI admin: the chart's hook Job creates this user in the metadata database (FAB auth manager).
ADMIN_KEYS = ("username", "password")

# Every key each Secret gets; the overlays and the chart's templates refer to these (tests/chart checks).
SECRET_KEYS = {
    CONNECTIONS: tuple(dag_config.connection_env_name(conn_id) for conn_id in CONNECTION_IDS),
    DOCKER_TLS: tuple(TLS_FILES.values()),
    GIT_SSH: ("gitSshKey",),
    METADATA_DB: ("connection",),
    POSTGRESQL: ("postgres-password",),
    FERNET: ("fernet-key",),
    API_SECRET: ("api-secret-key",),
    JWT: ("jwt-secret",),
    ADMIN: ADMIN_KEYS,
    SMTP: (SMTP_ENV,),
}
SMTP_KEYS = {"host", "port", "login", "password", "from_email", "starttls", "ssl"}


class InputError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Plan:
    """The Secrets to write. `generate` maps secret -> key -> generator, used only if absent."""

    namespace: str
    data: dict[str, dict[str, str]] = field(default_factory=dict)
    generate: dict[str, dict[str, Any]] = field(default_factory=dict)
    derive: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- validation


def _path(raw: Any) -> Path:
    return Path(os.path.expanduser(str(raw)))


def _read_file(name: str, raw: Any, problems: list[str]) -> str | None:
    if not raw:
        problems.append(f"{name}: missing (path to a file on this machine)")
        return None
    path = _path(raw)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{name}: cannot read {path} ({err.__class__.__name__}: {err.strerror or err})")
        return None


def _port(uri: str, scheme: str) -> int | None:
    """The port of a <scheme>://<host>:<port> URI; None if the URI is not of that form."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        return None
    return port if parts.scheme == scheme and parts.hostname else None


def _check_docker(name: str, uri: str, problems: list[str]) -> None:
    port = _port(uri, "tcp")
    if port is None:
        problems.append(f"{name}: expected tcp://<host>:2376 (the daemon's TLS port), got a malformed URI")
    elif port == 2375:
        problems.append(f"{name}: port 2375 is Docker's plain-text port; the daemons must listen with TLS on 2376")


def _check_spark(name: str, uri: str, problems: list[str]) -> None:
    if _port(uri, "spark") is None:
        problems.append(f"{name}: expected spark://<master host>:7077, got a malformed URI")


def _check_slack(name: str, url: str, problems: list[str]) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        problems.append(f"{name}: expected https://hooks.slack.com/services/... (http only for a loopback receiver)")
    elif not parts.hostname or not parts.path.startswith("/services/"):
        problems.append(f"{name}: expected a webhook URL whose path starts with /services/")


def _connection(conn_id: str, name: str, value: str, problems: list[str]) -> str:
    """The Secret's value for a required Connection, checked (the Slack webhook is given as its URL alone)."""
    if conn_id in dag_config.DOCKER_CONN_IDS.values():
        _check_docker(name, value, problems)
        return value
    if conn_id == dag_config.SPARK_CONN_ID:
        _check_spark(name, value, problems)
        return value
    if conn_id == dag_config.SLACK_CONN_ID:
        _check_slack(name, value, problems)
        return json.dumps({"conn_type": "slackwebhook", "password": value})
    raise AssertionError(f"no check for Connection {conn_id!r}: add one to _connection")


def _smtp_connection(section: Any, problems: list[str]) -> str | None:
    """The smtp provider's Connection as JSON (Secret key SMTP_ENV) from the input's smtp section."""
    if not isinstance(section, dict):
        problems.append("smtp: expected a mapping (host, port, from_email, login, password, starttls, ssl)")
        return None
    for extra in sorted(set(section) - SMTP_KEYS):
        problems.append(f"smtp.{extra}: unknown key (known: {', '.join(sorted(SMTP_KEYS))})")
    host, port, sender = section.get("host"), section.get("port"), section.get("from_email")
    if not host or not isinstance(host, str):
        problems.append("smtp.host: missing (the mail server's host name)")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append("smtp.port: missing or not a port number (587 for STARTTLS, 465 for SSL)")
    if not isinstance(sender, str) or "@" not in sender:
        problems.append("smtp.from_email: missing or not an address (the alerts' sender)")
    if bool(section.get("login")) != bool(section.get("password")):
        problems.append("smtp.login and smtp.password: give both, or neither for a server without login")
    starttls, ssl = section.get("starttls", True), section.get("ssl", False)
    if not isinstance(starttls, bool) or not isinstance(ssl, bool):
        problems.append("smtp.starttls and smtp.ssl: true or false")
    conn: dict[str, Any] = {"conn_type": "smtp", "host": host, "port": port}
    if section.get("login") and section.get("password"):
        conn |= {"login": str(section["login"]), "password": str(section["password"])}
    conn["extra"] = {"from_email": sender, "disable_tls": not starttls, "disable_ssl": not ssl, "timeout": 30}
    return json.dumps(conn)


def _check_metadata_url(name: str, url: str, problems: list[str]) -> None:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql") or not parts.hostname or not parts.username:
        problems.append(
            f"{name}: expected postgresql+psycopg2://<user>:<password>@<host>:5432/<database>, got a malformed URL"
        )
    elif not parts.password:
        problems.append(f"{name}: the URL has no password")
    elif not parts.path.strip("/"):
        problems.append(f"{name}: the URL names no database (…:5432/<database>)")


def _check_pem(name: str, text: str, kind: str, problems: list[str]) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        if kind == "key":
            return load_pem_private_key(text.encode(), password=None)
        return x509.load_pem_x509_certificate(text.encode())
    except (ValueError, TypeError) as err:
        what = "an unencrypted PEM private key" if kind == "key" else "a PEM certificate"
        problems.append(f"{name}: not {what} ({str(err).splitlines()[0]})")
        return None


def _check_ssh_key(name: str, text: str, problems: list[str]) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key

    loader = load_ssh_private_key if "BEGIN OPENSSH PRIVATE KEY" in text else load_pem_private_key
    try:
        loader(text.encode(), password=None)
    except (TypeError, UnsupportedAlgorithm):
        # Only an encrypted OpenSSH key needs bcrypt (its key derivation), hence UnsupportedAlgorithm.
        problems.append(f"{name}: the key has a passphrase; git-sync cannot type it (use a deploy key without one)")
    except (ValueError, AttributeError):
        problems.append(f"{name}: not a private key file (expected -----BEGIN ... PRIVATE KEY-----)")


def _check_tls(section: Any, problems: list[str]) -> dict[str, str]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not isinstance(section, dict):
        problems.append("docker_tls: missing (ca, cert and key: paths to the Docker client's PEM files)")
        return {}
    texts = {}
    parsed = {}
    for key, filename in TLS_FILES.items():
        text = _read_file(f"docker_tls.{key}", section.get(key), problems)
        if text is not None:
            texts[filename] = text
            parsed[key] = _check_pem(f"docker_tls.{key}", text, "key" if key == "key" else "cert", problems)
    for extra in sorted(set(section) - set(TLS_FILES)):
        problems.append(f"docker_tls.{extra}: unknown key (expected ca, cert, key)")
    if parsed.get("cert") is not None and parsed.get("key") is not None:
        der = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if parsed["cert"].public_key().public_bytes(*der) != parsed["key"].public_key().public_bytes(*der):
            problems.append("docker_tls.key: does not belong to docker_tls.cert")
    return texts


def validate(doc: Any, *, env: str) -> Plan:
    """Everything the Secrets need, or InputError listing every problem."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise InputError([f"secrets/{env}.yaml: expected a mapping of the keys in secrets/{env}.yaml.example"])
    for extra in sorted(set(doc) - TOP_KEYS):
        problems.append(f"{extra}: unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    namespace = doc.get("namespace") or "airflow"
    release = doc.get("release") or "tripclick"
    plan = Plan(namespace=str(namespace))

    conns = doc.get("connections")
    if not isinstance(conns, dict):
        problems.append(f"connections: missing (keys {', '.join(CONNECTION_IDS)})")
        conns = {}
    for extra in sorted(set(conns) - set(CONNECTION_IDS)):
        problems.append(f"connections.{extra}: unknown connection (the DAG uses {', '.join(CONNECTION_IDS)})")
    conn_data = {}
    for conn_id in CONNECTION_IDS:
        name = f"connections.{conn_id}"
        value = conns.get(conn_id)
        if not value or not isinstance(value, str):
            problems.append(f"{name}: missing")
            continue
        conn_data[dag_config.connection_env_name(conn_id)] = _connection(conn_id, name, value, problems)
    plan.data[CONNECTIONS] = conn_data

    plan.data[DOCKER_TLS] = _check_tls(doc.get("docker_tls"), problems)

    ssh_key = _read_file("git_ssh_key", doc.get("git_ssh_key"), problems)
    if ssh_key is not None:
        _check_ssh_key("git_ssh_key", ssh_key, problems)
        plan.data[GIT_SSH] = {"gitSshKey": ssh_key}

    db = doc.get("metadata_db")
    if not isinstance(db, dict) or not (bool(db.get("connection")) ^ bool(db.get("bundled"))):
        problems.append(
            "metadata_db: set exactly one of `connection` (external PostgreSQL URL, k3s-ec2) "
            "or `bundled: true` (the chart's PostgreSQL, kind)"
        )
    elif db.get("connection"):
        _check_metadata_url("metadata_db.connection", str(db["connection"]), problems)
        plan.data[METADATA_DB] = {"connection": str(db["connection"])}
    else:
        plan.generate[POSTGRESQL] = {"postgres-password": lambda: random.token_urlsafe(24)}
        host = f"{release}-postgresql.{namespace}"
        plan.derive[METADATA_DB] = lambda pw: {
            "connection": f"postgresql+psycopg2://postgres:{pw}@{host}:5432/postgres?sslmode=disable"
        }

    admin = doc.get("admin") if isinstance(doc.get("admin"), dict) else {}
    username = str(admin.get("username") or "")
    if not username or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        problems.append("admin.username: missing or not a plain name (letters, digits, `-`, `_`, `.`)")
    elif username == "admin":
        problems.append("admin.username: `admin` is the first name anyone tries; choose another")
    if admin.get("password") is not None and len(str(admin["password"])) < 12:
        problems.append("admin.password: shorter than 12 characters (leave it out to have one generated)")
    plan.derive[ADMIN] = (username, admin.get("password"))

    if doc.get("smtp") is not None:
        smtp = _smtp_connection(doc["smtp"], problems)
        if smtp is not None:
            plan.data[SMTP] = {SMTP_ENV: smtp}

    plan.generate[FERNET] = {"fernet-key": _fernet_key}
    plan.generate[API_SECRET] = {"api-secret-key": lambda: random.token_urlsafe(32)}
    plan.generate[JWT] = {"jwt-secret": lambda: random.token_urlsafe(48)}
    if problems:
        raise InputError(problems)
    return plan


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# ---------------------------------------------------------------- stores


class Store(Protocol):
    def read(self, name: str) -> dict[str, str] | None: ...

    def write(self, name: str, data: dict[str, str]) -> str: ...


class KubeStore:
    """Secrets of one namespace through the Kubernetes API (kubeconfig as kubectl uses it)."""

    def __init__(self, namespace: str, context: str | None = None):
        from kubernetes import client, config

        # Read KUBECONFIG now: the kubernetes package reads it once, when first imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, context=context)
        self.api = client.CoreV1Api()
        self.client = client
        self.namespace = namespace
        self._ensure_namespace()

    def _ensure_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.read_namespace(self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            self.api.create_namespace(self.client.V1Namespace(metadata=self.client.V1ObjectMeta(name=self.namespace)))
            print(f"created namespace {self.namespace}")

    def read(self, name: str) -> dict[str, str] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.api.read_namespaced_secret(name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def write(self, name: str, data: dict[str, str]) -> str:
        body = self.client.V1Secret(
            metadata=self.client.V1ObjectMeta(name=name, namespace=self.namespace, labels=MANAGED_BY),
            type="Opaque",
            string_data=data,
        )
        existing = self.read(name)
        if existing is None:
            self.api.create_namespaced_secret(self.namespace, body)
            return "created"
        if existing == data:
            return "unchanged"
        self.api.replace_namespaced_secret(name, self.namespace, body)
        return "updated"


class DryRunStore:
    """Pretends every Secret is absent and prints the manifests with values redacted."""

    dry_run = True

    def __init__(self, namespace: str):
        self.namespace = namespace

    def read(self, name: str) -> dict[str, str] | None:
        return None

    def write(self, name: str, data: dict[str, str]) -> str:
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace, "labels": MANAGED_BY},
            "type": "Opaque",
            "stringData": {key: REDACTED for key in sorted(data)},
        }
        print("---")
        print(yaml.safe_dump(manifest, sort_keys=False).rstrip())
        return "would be written"


# ---------------------------------------------------------------- apply


def apply(plan: Plan, store: Store, log=print) -> dict[str, str]:
    """Write every Secret; generated keys are kept when the Secret already has them."""
    outcome: dict[str, str] = {}
    made = "would generate" if getattr(store, "dry_run", False) else "generated"

    def with_generated(name: str) -> dict[str, str]:
        existing = store.read(name) or {}
        data = {}
        for key, make in plan.generate[name].items():
            if existing.get(key):
                data[key] = existing[key]
                log(f"{name}: kept the existing {key}")
            else:
                data[key] = make()
                log(f"{name}: {made} {key}")
        return data

    for name, data in plan.data.items():
        outcome[name] = store.write(name, data)
    for name in plan.generate:
        outcome[name] = store.write(name, with_generated(name))
    if METADATA_DB in plan.derive:
        password = (store.read(POSTGRESQL) or {}).get("postgres-password") or REDACTED
        outcome[METADATA_DB] = store.write(METADATA_DB, plan.derive[METADATA_DB](password))
    username, given = plan.derive[ADMIN]
    existing = store.read(ADMIN) or {}
    # A Secret written for the Simple auth manager held {"<user>": "<password>"} as passwords.json.
    earlier = json.loads(existing.get("passwords.json") or "{}")
    kept = existing.get("password") if existing.get("username") == username else earlier.get(username)
    if given:
        password = str(given)
        log(f"{ADMIN}: password for {username} taken from the input file")
    elif kept:
        password = kept
        log(f"{ADMIN}: kept the existing password for {username}")
    else:
        password = random.token_urlsafe(18)
        log(f"{ADMIN}: {made} a password for {username}")
    outcome[ADMIN] = store.write(ADMIN, {"username": username, "password": password})
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="", help="reads secrets/<env>.yaml")
    parser.add_argument("--file", type=Path, help="input file instead of secrets/<env>.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the Secret manifests, values redacted")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    args = parser.parse_args(argv)

    if not args.env and not args.file:
        parser.error("give ENV=<name> (make) or --env <name>: the input is secrets/<name>.yaml")
    source = args.file or SECRETS_DIR / f"{args.env}.yaml"
    if not source.is_file():
        examples = ", ".join(p.name for p in sorted(SECRETS_DIR.glob("*.example")))
        print(f"error: {source} not found: copy one of secrets/{{{examples}}} to it and fill it in", file=sys.stderr)
        return 2
    try:
        doc = yaml.safe_load(source.read_text())
        plan = validate(doc, env=args.env)
    except yaml.YAMLError as err:
        print(f"error: {source} is not valid YAML: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except InputError as err:
        print(f"error: {source} has {len(err.problems)} problem(s):", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2

    store: Store = DryRunStore(plan.namespace) if args.dry_run else KubeStore(plan.namespace, args.context)
    for name, result in apply(plan, store).items():
        print(f"{name}: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
