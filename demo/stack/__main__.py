"""python -m demo.stack {up,down,status,env,ops-env,images}"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import airflow, config, images, monitoring, proc, tls
from .proc import StackError
from .services import DockerDaemon, Postgres, SlackReceiver, SmtpReceiver, SparkMaster, SparkWorker, StatsdCapture


def dockers() -> list[DockerDaemon]:
    return [DockerDaemon(s) for s in config.DOCKER_SERVERS]


def all_services() -> list:
    return [
        Postgres(),
        *dockers(),
        SparkMaster(),
        SparkWorker(),
        SlackReceiver(),
        SmtpReceiver(),
        *monitoring.services(),
        StatsdCapture(),
        *airflow.components(),
    ]


def _parallel(services) -> None:
    """Bring several services up at once (most of the time is spent waiting for readiness)."""
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        futures = [(s, pool.submit(s.up)) for s in services]
        errors = []
        for s, f in futures:
            try:
                print(f"  {f.result()}", flush=True)
            except StackError as exc:
                errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - any other failure is reported with the service's name
                errors.append(f"{s.name}: {type(exc).__name__}: {exc}")
        if errors:
            raise StackError("\n\n".join(errors))


def up(with_images: bool = True) -> None:
    t0 = time.monotonic()
    print(f"demo stack: state in {config.STATE}")
    config.STATE.mkdir(parents=True, exist_ok=True)
    config.load_secrets()
    config.admin_password_file()  # the runbook's client reads the password from a file, as in production
    tls.ensure()  # once, before the daemons that read it start in parallel
    # Folders the DAG's Variables point at: bind-mount sources must exist before a container is created.
    for folder in (config.landing_dir(), config.lake_root(), *map(config.server_data_dir, config.DOCKER_SERVERS)):
        folder.mkdir(parents=True, exist_ok=True)
    # The exporter first, built from its Go module on a fresh machine (about a minute and a half), so
    # the capture forwards Airflow's first metrics to it; Prometheus and Alertmanager beside the others.
    exporter, *alerting = monitoring.services()
    _parallel([Postgres(), *dockers(), SparkMaster(), SlackReceiver(), SmtpReceiver(), exporter, *alerting])
    _parallel([SparkWorker(), StatsdCapture()])
    if with_images:
        images.ensure(dockers())
    e = airflow.env()
    airflow.ensure_db(e)
    comps = airflow.components()
    _parallel(comps[:1])  # the api-server first: the others report their health through it
    _parallel(comps[1:])
    print(f"demo stack: up in {time.monotonic() - t0:.0f}s")
    print_access()


def print_access() -> None:
    s = config.load_secrets()
    print(f"  Airflow UI      {config.airflow_url()}  user {config.ADMIN_USER}  password {s['admin_password']}")
    print(f"  Spark master UI http://{config.HOST}:{config.PORTS['spark_master_ui']}")
    print(f"  Slack messages  http://{config.HOST}:{config.PORTS['slack']}/messages")
    print(f"  Prometheus UI   {config.prometheus_url()}/alerts  (rules: chart/files/monitoring/)")
    print(f"  Alertmanager UI {config.alertmanager_url()}")
    print(f"  Alert emails    {config.smtp_store()}")
    print(f"  StatsD lines    {config.statsd_store()}")


def down() -> None:
    for s in reversed(all_services()):
        started = time.monotonic()
        line = s.down()
        print(f"  {line} [{time.monotonic() - started:.1f}s]", flush=True)
    for line in proc.reap_sessions():
        print(f"  stopped straggler {line}")


def status() -> int:
    bad = 0
    for s in all_services():
        line = s.status()
        bad += "healthy" not in line or "UNHEALTHY" in line
        print(line)
    return 1 if bad else 0


def print_exports(env: dict[str, str]) -> None:
    for k, v in env.items():
        print(f"export {k}={shlex.quote(v)}")


def print_env() -> None:
    prefixes = ("AIRFLOW", "JAVA_HOME", "SPARK_", "PYSPARK_", "PGPASSFILE")
    print_exports({k: v for k, v in sorted(airflow.env().items()) if k.startswith(prefixes)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m demo.stack", description="Local demo stack for tripclick")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start every service (reuses those already up and healthy)")
    p_up.add_argument("--no-images", action="store_true", help="skip building/loading the producer image")
    sub.add_parser("down", help="stop every service the stack started, by PID")
    sub.add_parser("status", help="one line per service; exit 1 if any is down or unhealthy")
    sub.add_parser("env", help="print `export` lines to use the airflow CLI against the stack")
    sub.add_parser("ops-env", help="print `export` lines pointing the runbook's python -m tripclick_ops at the stack")
    sub.add_parser("images", help="build the producer image once and load it into both daemons")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            up(with_images=not args.no_images)
        elif args.cmd == "down":
            down()
        elif args.cmd == "status":
            return status()
        elif args.cmd == "env":
            print_env()
        elif args.cmd == "ops-env":
            print_exports(config.ops_env())
        elif args.cmd == "images":
            images.ensure(dockers())
    except StackError as exc:
        print(f"\ndemo stack: FAILED\n{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
