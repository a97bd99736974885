"""Receive StatsD datagrams on loopback UDP and append each line to --store, as Airflow sent it.

What the end-to-end tests read to prove which metrics a real run emits (the statsd exporter's mappings,
the alert rules and the dashboard depend on them). Each datagram goes on unchanged to --forward, the
stack's statsd exporter, as if Airflow had sent it there. Once bound, it writes its PID to --ready, which
is how the stack knows it is listening.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--store", type=Path, required=True, help="text file, one StatsD line per line")
    ap.add_argument("--ready", type=Path, required=True, help="file that gets this process's PID once bound")
    ap.add_argument("--forward", metavar="HOST:PORT", help="send every datagram on to this UDP address")
    args = ap.parse_args(argv)
    forward = None
    if args.forward:
        host, _, port = args.forward.rpartition(":")
        forward = (host, int(port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    args.store.parent.mkdir(parents=True, exist_ok=True)
    args.ready.write_text(str(os.getpid()))
    print(f"StatsD capture on udp://{args.host}:{args.port}, lines in {args.store}", flush=True)
    # Line-buffered: a test reading the file sees every datagram received before it looked.
    with args.store.open("a", buffering=1) as out:
        while True:
            data, _ = sock.recvfrom(65535)
            if forward:
                # UDP, as from Airflow: an exporter that is down loses the datagram, the capture does not.
                sock.sendto(data, forward)
            for line in data.decode(errors="replace").splitlines():
                if line.strip():
                    out.write(line + "\n")


if __name__ == "__main__":
    main()
