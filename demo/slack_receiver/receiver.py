"""HTTP server speaking Slack's incoming-webhook protocol, storing what it receives.

Slack's answers are mirrored so the Slack provider's hook sees what it would see in production:
  POST <a webhook path> with a JSON object holding "text", "blocks"
       and/or "attachments" (Alertmanager sends attachments alone)        -> 200 "ok"
  POST another path                                                       -> 404 "no_service"
  POST a body that is not a JSON object                                   -> 400 "invalid_payload"
  POST JSON with none of "text", "blocks", "attachments"                  -> 400 "no_text"
For tests and the demo summary: GET /messages (JSON list), GET /health.
Messages are appended as JSON lines to --store so they survive a restart of the receiver.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1 << 20


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)

    def add(self, message: dict) -> None:
        with self.lock, self.path.open("a") as f:
            f.write(json.dumps(message) + "\n")

    def all(self) -> list[dict]:
        with self.lock:
            lines = self.path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def make_handler(store: Store, webhook_paths: tuple[str, ...]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "slack-webhook-standin/1"

        def _send(self, code: int, body: str, ctype: str = "text/html") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args) -> None:  # one line per request, to the service log
            print(f"{self.address_string()} {fmt % args}", flush=True)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/health":
                self._send(200, "ok")
            elif self.path == "/messages":
                self._send(200, json.dumps(store.all()), "application/json")
            else:
                self._send(404, "no_service")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, "request_too_large")
                return
            raw = self.rfile.read(length)
            if urllib.parse.urlsplit(self.path).path not in webhook_paths:
                self._send(404, "no_service")
                return
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                if ctype == "application/x-www-form-urlencoded":
                    form = urllib.parse.parse_qs(raw.decode())
                    payload = json.loads(form["payload"][0])
                else:
                    payload = json.loads(raw.decode() or "null")
            except (ValueError, KeyError, UnicodeDecodeError):
                self._send(400, "invalid_payload")
                return
            if not isinstance(payload, dict):
                self._send(400, "invalid_payload")
                return
            if not any(payload.get(key) for key in ("text", "blocks", "attachments")):
                self._send(400, "no_text")
                return
            store.add({"received_at": time.time(), "path": self.path, "payload": payload})
            self._send(200, "ok")

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument(
        "--path", action="append", help="a webhook path that exists (repeat for more; default /services/T000/B000/XXXX)"
    )
    ap.add_argument("--store", type=Path, required=True, help="JSON lines file of received messages")
    args = ap.parse_args(argv)
    paths = tuple(args.path or ["/services/T000/B000/XXXX"])
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Store(args.store), paths))
    print(f"slack webhook stand-in on http://{args.host}:{args.port}{', '.join(paths)}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
