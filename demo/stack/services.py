"""The stack's services. Each one knows how to tell it is healthy, start, and stop by PID.

Every process is started by this module, in its own session, with its PID in .state/demo/run/ and its
output in .state/demo/logs/; nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil

from . import config, proc, settings, tls
from .proc import StackError

# docker-py (through requests) would take the machine's CA bundle from these instead of our CA.
for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_var, None)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PATH"] = f"{config.VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def java_home() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError("java not found: run scripts/system_deps.sh (installs openjdk-17-jre-headless)")
    return str(Path(java).resolve().parents[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Service:
    name = ""
    marker: str | None = None  # substring of the process command line, guards against PID reuse
    start_timeout = 60.0
    stop_signal = signal.SIGTERM

    @property
    def pidfile(self) -> Path:
        return proc.run_dir() / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return proc.log_path(self.name)

    def pid(self) -> int | None:
        return proc.read_pid(self.pidfile, self.marker)

    def healthy(self) -> bool:
        raise NotImplementedError

    def launch(self) -> int:
        raise NotImplementedError

    def up(self) -> str:
        pid = self.pid()
        if pid and self._safe_healthy():
            return f"{self.name}: already up (pid {pid})"
        if pid:
            # Started but not healthy yet (e.g. a previous `up` was interrupted): give it the same deadline.
            try:
                proc.wait_for(self.name, self.healthy, timeout=self.start_timeout, pid=pid, log=self.log)
                return f"{self.name}: up (pid {pid})"
            except StackError:
                print(f"  {self.name}: pid {pid} is not healthy; restarting it")
                self.down()
        if self._port_taken():
            raise StackError(
                f"{self.name}: its port is already in use by a process this stack did not start "
                f"({self.describe()}). Stop that process, or run `make demo-down` if it is a stale demo."
            )
        self.prepare()
        t0 = time.monotonic()
        pid = self.launch()
        proc.wait_for(self.name, self.healthy, timeout=self.start_timeout, pid=pid, log=self.log)
        self.after_start()
        return f"{self.name}: started (pid {pid}, {time.monotonic() - t0:.1f}s)"

    def _safe_healthy(self) -> bool:
        try:
            return self.healthy()
        except Exception:  # noqa: BLE001
            return False

    def _port_taken(self) -> bool:
        port = self.port()
        return bool(port) and proc.port_open(port)

    def port(self) -> int | None:
        return None

    def describe(self) -> str:
        port = self.port()
        return f"127.0.0.1:{port}" if port else ""

    def prepare(self) -> None:
        pass

    def after_start(self) -> None:
        pass

    def down(self) -> str:
        pid = self.pid()
        if not pid:
            self.pidfile.unlink(missing_ok=True)
            return f"{self.name}: not running"
        self._signal_stop(pid)
        self.pidfile.unlink(missing_ok=True)
        return f"{self.name}: stopped (pid {pid})"

    def _signal_stop(self, pid: int) -> None:
        if self.stop_signal != signal.SIGTERM and proc.pid_alive(pid):
            os.kill(pid, self.stop_signal)
        proc.stop_pid(self.name, pid)

    def status(self) -> str:
        pid = self.pid()
        if not pid:
            return f"{self.name:<16} down"
        return f"{self.name:<16} {'healthy' if self._safe_healthy() else 'UNHEALTHY'} pid {pid} {self.describe()}"


# --------------------------------------------------------------------------------------------- PostgreSQL
class Postgres(Service):
    name = "postgres"
    marker = "postgres"
    start_timeout = 60.0
    stop_timeout = 60.0

    def __init__(self) -> None:
        self.root = config.state("pg")
        self.data = self.root / "data"
        self.sock = config.socket_dir("pg", "run")

    def port(self) -> int:
        return config.PORTS["postgres"]

    def bindir(self) -> Path:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
        if candidates:
            return candidates[0].parent
        found = shutil.which("postgres")
        if found:
            return Path(found).parent
        raise StackError("PostgreSQL server not found: run scripts/system_deps.sh (installs postgresql)")

    def pid(self) -> int | None:
        return proc.read_pid(self.data / "postmaster.pid", self.marker)

    def _as_postgres(self, *cmd: str, check: bool = True, input_: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd), user="postgres", check=check, capture_output=True, text=True, input=input_, cwd="/"
        )

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.data, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
            d.chmod(0o700)
        if not (self.data / "PG_VERSION").exists():
            r = self._as_postgres(
                str(self.bindir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                check=False,
            )
            if r.returncode:
                raise StackError(f"initdb failed for {self.data}:\n{r.stdout}\n{r.stderr}")

    def launch(self) -> int:
        # postgres refuses to run as root; it runs as the Debian package's `postgres` user. pg_ctl -w returns
        # once the server accepts connections (or fails with its reason); the server leads its own session.
        log = self.log
        log.touch()
        shutil.chown(log, "postgres", "postgres")
        options = [
            "-p",
            str(self.port()),
            "-k",
            str(self.sock),
            "-c",
            f"listen_addresses={config.HOST}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]
        r = self._pg_ctl("start", "-l", str(log), "-t", str(int(self.start_timeout)), "-o", shlex.join(options))
        pid = self.pid()
        if r.returncode or not pid:
            raise StackError(
                f"pg_ctl start failed:\n{r.stdout}{r.stderr}\n--- last lines of {log} ---\n{proc.tail(log)}"
            )
        return pid

    def _signal_stop(self, pid: int) -> None:
        # "fast": end open sessions (Airflow's pooled connections) instead of waiting for them to close.
        r = self._pg_ctl("stop", "-m", "fast", "-t", str(int(self.stop_timeout)))
        if r.returncode and proc.pid_alive(pid):
            print(f"  {self.name}: pg_ctl stop failed ({(r.stderr or r.stdout).strip()}); stopping pid {pid}")
            proc.stop_pid(self.name, pid, timeout=self.stop_timeout)

    def restart(self) -> int:
        """Restart the server as a managed database's failover or maintenance would: open sessions are ended
        ("fast"), and it is back once it accepts connections again. Returns the new server's PID."""
        old = self.pid()
        r = self._pg_ctl("restart", "-m", "fast", "-l", str(self.log), "-t", str(int(self.start_timeout)))
        pid = self.pid()
        if r.returncode or not pid or pid == old:
            raise StackError(
                f"pg_ctl restart failed:\n{r.stdout}{r.stderr}\n--- last lines of {self.log} ---\n{proc.tail(self.log)}"
            )
        return pid

    def _pg_ctl(self, action: str, *args: str) -> subprocess.CompletedProcess:
        return self._as_postgres(str(self.bindir() / "pg_ctl"), action, "-D", str(self.data), "-w", *args, check=False)

    def healthy(self) -> bool:
        r = self._as_postgres(
            str(self.bindir() / "pg_isready"), "-q", "-h", str(self.sock), "-p", str(self.port()), check=False
        )
        return r.returncode == 0

    def psql(self, sql: str, db: str = "postgres") -> str:
        r = self._as_postgres(
            str(self.bindir() / "psql"),
            "-h",
            str(self.sock),
            "-p",
            str(self.port()),
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-f",
            "-",
            check=False,
            input_=sql,
        )
        if r.returncode:
            raise StackError(f"psql failed: {r.stderr.strip()}")
        return r.stdout

    def after_start(self) -> None:
        self.ensure_databases()

    def ensure_databases(self) -> None:
        s = config.load_secrets()
        for user, db, pw in (
            (config.PG_USER_AIRFLOW, config.PG_DB_AIRFLOW, s["pg_airflow_password"]),
            (config.PG_USER_GOLD, config.PG_DB_GOLD, s["pg_gold_password"]),
        ):
            exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'").strip()
            verb = "ALTER" if exists else "CREATE"
            self.psql(f"{verb} ROLE {user} LOGIN PASSWORD '{pw}'")
            if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip():
                self.psql(f"CREATE DATABASE {db} OWNER {user}")
        pgpass = config.state("pg", "pgpass")
        pgpass.write_text(
            f"{config.HOST}:{self.port()}:{config.PG_DB_GOLD}:{config.PG_USER_GOLD}:{s['pg_gold_password']}\n"
        )
        pgpass.chmod(0o600)
        shutil.chown(pgpass, "root", "root")


# ------------------------------------------------------------------------------------------ Docker daemons
class DockerDaemon(Service):
    start_timeout = 90.0
    marker = "dockerd"

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"docker-{server}"
        self.root = config.state("docker", server)

    def port(self) -> int:
        return config.PORTS[self.server]

    @property
    def url(self) -> str:
        return settings.docker_url(self.server)

    @property
    def exec_root(self) -> Path:
        # containerd puts unix sockets under the exec root
        return config.socket_dir("docker", self.server, "exec")

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    def prepare(self) -> None:
        tls.ensure()
        for d in (self.root, self.root / "data", self.exec_root, config.socket_dir("docker", self.server)):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "daemon.json").write_text("{}\n")

    def launch(self) -> int:
        t = config.tls_dir() / self.server
        cmd = [
            shutil.which("dockerd") or "dockerd",
            "--config-file",
            str(self.root / "daemon.json"),
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            "-H",
            f"unix://{config.socket_dir('docker', self.server) / 'docker.sock'}",
            "-H",
            self.url,
            "--tlsverify",
            "--tlscacert",
            str(t / "ca.pem"),
            "--tlscert",
            str(t / "cert.pem"),
            "--tlskey",
            str(t / "key.pem"),
            # Producers write to a bind-mounted landing folder; no container network is needed, and
            # no iptables rule is touched on the host.
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--log-level=warn",
        ]
        pid = proc.start(self.name, cmd, env=clean_env())
        return pid

    def client(self, tls_dir: Path | None = None, timeout: int = 10):
        import docker
        from docker.tls import TLSConfig

        d = tls_dir or config.client_tls_dir()
        tls_config = TLSConfig(
            client_cert=(str(d / "cert.pem"), str(d / "key.pem")), ca_cert=str(d / "ca.pem"), verify=True
        )
        return docker.DockerClient(base_url=self.url, tls=tls_config, timeout=timeout)

    def healthy(self) -> bool:
        c = self.client(timeout=3)
        try:
            return bool(c.ping())
        finally:
            c.close()

    def describe(self) -> str:
        return f"{self.url} (mutual TLS)"

    def down(self) -> str:
        msg = super().down()
        # dockerd bind-mounts its data root onto itself (and may leave container mounts) if it dies hard;
        # unmount what is left so the state folder can be deleted.
        for root in (self.root, self.exec_root):
            for point in sorted(_mounts_under(root), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        return msg


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    points = [part.mountpoint for part in psutil.disk_partitions(all=True)]
    return [point for point in points if point == str(root) or point.startswith(prefix)]


# ---------------------------------------------------------------------------------------------- Spark
class SparkBase(Service):
    marker = "org.apache.spark.deploy"
    start_timeout = 90.0

    def env(self) -> dict[str, str]:
        env = clean_env()
        env.update(
            JAVA_HOME=java_home(),
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP=config.HOST,
            SPARK_LOG_DIR=str(config.state("logs")),
            SPARK_LOCAL_DIRS=str(config.state("spark", "tmp")),
            PYSPARK_PYTHON=str(config.VENV_BIN / "python"),
            SPARK_DAEMON_MEMORY="256m",
        )
        return env

    def spark_class(self) -> str:
        return str(spark_home() / "bin" / "spark-class")

    def master_json(self) -> dict:
        code, body = http_get(f"http://{config.HOST}:{config.PORTS['spark_master_ui']}/json/")
        if code != 200:
            raise StackError(f"spark master UI answered {code}")
        return json.loads(body)

    def prepare(self) -> None:
        config.state("spark", "tmp").mkdir(parents=True, exist_ok=True)
        config.state("spark", "work").mkdir(parents=True, exist_ok=True)


class SparkMaster(SparkBase):
    name = "spark-master"

    def port(self) -> int:
        return config.PORTS["spark_master"]

    def launch(self) -> int:
        cmd = [
            self.spark_class(),
            "org.apache.spark.deploy.master.Master",
            "--host",
            config.HOST,
            "--port",
            str(self.port()),
            "--webui-port",
            str(config.PORTS["spark_master_ui"]),
        ]
        return proc.start(self.name, cmd, env=self.env())

    def healthy(self) -> bool:
        return proc.port_open(self.port()) and self.master_json().get("status") == "ALIVE"

    def describe(self) -> str:
        return f"spark://{config.HOST}:{self.port()} (UI http://{config.HOST}:{config.PORTS['spark_master_ui']})"


class SparkWorker(SparkBase):
    name = "spark-worker"

    def port(self) -> int:
        return config.PORTS["spark_worker_ui"]

    def launch(self) -> int:
        cmd = [
            self.spark_class(),
            "org.apache.spark.deploy.worker.Worker",
            f"spark://{config.HOST}:{config.PORTS['spark_master']}",
            "--host",
            config.HOST,
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            str(self.port()),
            "--work-dir",
            str(config.state("spark", "work")),
        ]
        return proc.start(self.name, cmd, env=self.env())

    def healthy(self) -> bool:
        workers = self.master_json().get("workers", [])
        return any(w.get("state") == "ALIVE" and w.get("host") == config.HOST for w in workers)


# ------------------------------------------------------------------------------------------ Slack stand-in
class SlackReceiver(Service):
    name = "slack-receiver"
    marker = "demo.slack_receiver"
    start_timeout = 20.0

    def port(self) -> int:
        return config.PORTS["slack"]

    def launch(self) -> int:
        store = config.state("slack", "messages.jsonl")
        store.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(config.VENV_BIN / "python"),
            "-m",
            "demo.slack_receiver",
            "--host",
            config.HOST,
            "--port",
            str(self.port()),
            "--path",
            config.SLACK_PATH,
            "--path",
            config.SLACK_ALERTS_PATH,
            "--store",
            str(store),
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.REPO)

    def healthy(self) -> bool:
        code, _ = http_get(f"http://{config.HOST}:{self.port()}/health")
        return code == 200

    def describe(self) -> str:
        return config.slack_url()


# -------------------------------------------------------------------------------------------- SMTP server
class SmtpReceiver(Service):
    name = "smtp-receiver"
    marker = "demo.smtp_receiver"
    start_timeout = 20.0

    def port(self) -> int:
        return config.PORTS["smtp"]

    def launch(self) -> int:
        cmd = [
            str(config.VENV_BIN / "python"),
            "-m",
            "demo.smtp_receiver",
            "--host",
            config.HOST,
            "--port",
            str(self.port()),
            "--store",
            str(config.smtp_store()),
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.REPO)

    def healthy(self) -> bool:
        import smtplib

        with smtplib.SMTP(config.HOST, self.port(), timeout=3) as smtp:
            return smtp.noop()[0] == 250

    def describe(self) -> str:
        return f"smtp://{config.HOST}:{self.port()} (messages in {config.smtp_store()})"


# --------------------------------------------------------------------------------------- StatsD capture
class StatsdCapture(Service):
    name = "statsd-capture"
    marker = "demo.statsd_capture"
    start_timeout = 20.0

    @property
    def ready_file(self) -> Path:
        return proc.run_dir() / f"{self.name}.ready"

    def prepare(self) -> None:
        self.ready_file.unlink(missing_ok=True)

    def launch(self) -> int:
        cmd = [
            str(config.VENV_BIN / "python"),
            "-m",
            "demo.statsd_capture",
            "--host",
            config.HOST,
            "--port",
            str(config.PORTS["statsd"]),
            "--store",
            str(config.statsd_store()),
            "--ready",
            str(self.ready_file),
            "--forward",
            f"{config.HOST}:{config.PORTS['statsd_exporter']}",
        ]
        return proc.start(self.name, cmd, env=clean_env(), cwd=config.REPO)

    def healthy(self) -> bool:
        # UDP has no handshake to probe: the capture writes its PID once its socket is bound.
        return self.ready_file.exists() and self.ready_file.read_text() == str(self.pid())

    def describe(self) -> str:
        return f"udp://{config.HOST}:{config.PORTS['statsd']} (lines in {config.statsd_store()})"
