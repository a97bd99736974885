"""SMTP server (aiosmtpd) on loopback, storing what it receives.

Every accepted message is appended to --store as one JSON line: when it arrived, the envelope sender
and recipients, the Subject header and the text of the body (HTML parts included as they are), so the
demo and the end-to-end tests read exactly what a mail client would get. No authentication and no TLS:
it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller


class StoreHandler:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.lock = threading.Lock()
        store.parent.mkdir(parents=True, exist_ok=True)
        store.touch(exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        parts = [part for part in message.walk() if part.get_content_maintype() == "text"]
        record = {
            "received_at": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "body": "\n".join(part.get_content() for part in parts),
        }
        with self.lock, self.store.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"accepted mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--store", type=Path, required=True, help="JSON lines file of received messages")
    args = ap.parse_args(argv)
    controller = Controller(StoreHandler(args.store), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP server on {args.host}:{args.port}, messages in {args.store}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
