"""A loopback endpoint that speaks the Docker Engine API over mutual TLS and records what it is asked.

The golden producer files are what the Docker provider really sends to a daemon: the DockerOperator
runs its own code path (docker-py, TLS with our client certificate) against this endpoint, which
answers the calls before container creation like a daemon that has the image, records the
create request, and refuses it, so that no container is involved. The real daemons are exercised
end to end in tests/e2e.
"""

from __future__ import annotations

import json
import ssl
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from demo.stack import config, tls
from tests.dags.netutil import LoopbackServer

HOST = config.HOST
REFUSAL = "recorded by the golden test; no container is created"
# What Debian 12's docker.io (20.10), the daemons of the end-to-end stack, reports.
VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux"}


class RecordingDockerDaemon(LoopbackServer):
    """Mutual-TLS Docker Engine API endpoint on loopback; ``client_dir`` holds ca.pem, cert.pem, key.pem."""

    def __init__(self, workdir: Path):
        # The demo stack's own PKI: a CA, a server certificate for 127.0.0.1 per daemon, the client's.
        tls.build(workdir)
        self.client_dir = workdir / config.client_tls_dir().name
        server_dir = workdir / config.DOCKER_SERVERS[0]

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(server_dir / "ca.pem"))
        context.load_cert_chain(server_dir / "cert.pem", server_dir / "key.pem")

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
