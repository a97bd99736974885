"""A loopback endpoint that speaks the Docker Engine API over mutual TLS and records what it is asked.

The golden producer files are what the Docker provider really sends to a daemon: the DockerOperator
runs its own code path (docker-py, TLS with our client certificate) against this endpoint, which
answers the calls before container creation like a daemon that has the image, records the
create request, and refuses it, so that no container is involved. The real daemons are exercised
end to end in tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.dags.netutil import LoopbackServer

HOST = "127.0.0.1"
CLIENT_CN = "airflow-task"
REFUSAL = "recorded by the golden test; no container is created"
# What Debian 12's docker.io (20.10), the daemons of the end-to-end stack, reports.
VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux"}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool, server: bool = False) -> x509.Certificate:
    # Validity brackets the certificate's own creation time, so it holds under any faked clock.
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, cert=None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


class RecordingDockerDaemon(LoopbackServer):
    """Mutual-TLS Docker Engine API endpoint on loopback; ``client_dir`` holds ca.pem, cert.pem, key.pem."""

    def __init__(self, workdir: Path):
        self.client_dir = workdir / "client"
        self.client_dir.mkdir(parents=True)
        server_dir = workdir / "server"
        server_dir.mkdir()
        ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
        ca = _certificate("golden-test-ca", ca_key, "golden-test-ca", ca_key, ca=True)
        _pem(self.client_dir / "ca.pem", cert=ca)
        _pem(self.client_dir / "cert.pem", cert=_certificate(CLIENT_CN, client_key, "golden-test-ca", ca_key, ca=False))
        _pem(self.client_dir / "key.pem", key=client_key)
        server_cert = _certificate(HOST, server_key, "golden-test-ca", ca_key, ca=False, server=True)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.client_dir / "ca.pem"))
        context.load_cert_chain(
            _pem(server_dir / "cert.pem", cert=server_cert), _pem(server_dir / "key.pem", key=server_key)
        )

        self.requests: list[dict] = []
        self.created: list[dict] = []
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: bytes) -> dict:
                url = urlsplit(self.path)
                peer = self.connection.getpeercert()
                subject = dict(item for rdn in peer["subject"] for item in rdn)
                entry = {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "client_certificate_cn": subject.get("commonName"),
                    "body": json.loads(body) if body else None,
                }
                daemon.requests.append(entry)
                return entry

            def do_GET(self):  # noqa: N802 - http.server's naming
                entry = self._record(b"")
                if entry["path"].endswith("/_ping"):
                    self._reply(200, b"OK")
                elif entry["path"].endswith("/version"):
                    self._reply(200, VERSION)
                elif entry["path"].endswith("/images/json"):
                    # The image is present, so the operator does not pull.
                    self._reply(200, [{"Id": "sha256:" + "0" * 64, "RepoTags": entry["query"].get("filter", [])}])
                else:
                    self._reply(404, {"message": f"not served here: GET {entry['path']}"})

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                entry = self._record(body)
                if entry["path"].endswith("/containers/create"):
                    daemon.created.append(entry)
                self._reply(409, {"message": REFUSAL})

            def do_DELETE(self):  # noqa: N802 - http.server's naming
                self._record(b"")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"tcp://{HOST}:{self.port}"
