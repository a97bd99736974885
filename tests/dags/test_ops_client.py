"""The REST client rides out an api-server that answers 5xx or drops connections for a moment (it or its
metadata database restarting), without ever sending a trigger twice; against a real loopback HTTP server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import pytest

from tests.dags.netutil import LoopbackServer, closed_port, send_json
from tripclick_ops.api import TRANSIENT, ApiError, Client

# The production retries without their pauses, for the tests that exhaust them.
NO_PAUSE = TRANSIENT.new(backoff_factor=0)


class FlakyApiServer(LoopbackServer):
    """Answers the login, then `failures` times `status` on every other path, then 200; keeps each request's
    method and path."""

    def __init__(self, failures: int, status: int = 503):
        self.requests: list[tuple[str, str]] = []
        self.failures = failures
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    server.requests.append((self.command, self.path))
                    failing = self.path != "/auth/token" and server.failures > 0
                    if failing:
                        server.failures -= 1
                if self.path == "/auth/token":
                    code, body = 201, {"access_token": "token"}
                elif failing:
                    code, body = status, {"detail": "Database error"}
                else:
                    code, body = 200, {"state": "running"}
                send_json(self, code, body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}"

    def calls(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method and path != "/auth/token"]


def test_a_read_is_retried_through_a_short_outage_and_answers():
    with FlakyApiServer(failures=3) as server:
        client = Client(server.url, "admin", "pw")
        assert client.call("GET", "/dags/d/dagRuns/r") == {"state": "running"}
    assert len(server.calls("GET")) == 4


def test_a_longer_outage_ends_in_an_error_with_the_status():
    with FlakyApiServer(failures=100) as server:
        client = Client(server.url, "admin", "pw", retries=NO_PAUSE)
        with pytest.raises(ApiError, match="HTTP 503") as raised:
            client.call("GET", "/dags/d/dagRuns/r")
    assert raised.value.status == 503
    assert len(server.calls("GET")) == 1 + TRANSIENT.total


def test_a_trigger_answered_with_5xx_is_not_sent_again():
    with FlakyApiServer(failures=1, status=500) as server:
        client = Client(server.url, "admin", "pw")
        with pytest.raises(ApiError, match="HTTP 500") as raised:
            client.call("POST", "/dags/d/dagRuns", body={"logical_date": None})
    assert raised.value.status == 500
    assert server.calls("POST") == ["/api/v2/dags/d/dagRuns"]


def test_a_server_that_is_gone_is_named():
    with FlakyApiServer(failures=0) as server:
        client = Client(server.url, "admin", "pw", retries=NO_PAUSE)
    port = closed_port()
    client.url = f"http://127.0.0.1:{port}"
    client.api.configuration.host = client.url
    with pytest.raises(ApiError, match=f"cannot reach http://127.0.0.1:{port}"):
        client.call("GET", "/dags/d")
