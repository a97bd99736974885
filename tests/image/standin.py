"""Build image/Dockerfile on a stand-in for the official Airflow base, with a private Docker daemon.

The official `apache/airflow` image cannot be pulled here, so the base is made from Debian packages
with the official image's layout (see docs/testing.md "The Airflow image"):
  - Debian bookworm (the official 3.x images are built on debian:bookworm-slim), minbase variant;
  - user `airflow`, uid 50000, primary group 0, home /home/airflow;
  - a virtual environment at /home/airflow/.local whose bin/ comes first on PATH, as the official
    image's VIRTUAL_ENV; pip in it; AIRFLOW_HOME=/opt/airflow with dags/ and logs/; USER 50000.
Differences that remain: Python 3.11 (bookworm's) instead of the official 3.12 built from source,
no Airflow preinstalled (the Dockerfile's pip step installs it from the pin), no entrypoint script,
dumb-init, database clients or the official image's other apt packages.

Everything lives under .state/image/: the daemon's data, exec root, socket, pid file and log, and the
base root-filesystem tarball, cached under a key made from the recipe below.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from demo.stack import images

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state" / "image"

# The Debian root the local stack's producer image is made from (demo/stack/images.py): debootstrapped once per
# machine; python3-venv and ca-certificates among its packages are what the stand-in needs.
SUITE = images.SUITE
BASE_TAG = f"tripclick-standin-base:{SUITE}"
AIRFLOW_UID = 50000
# What the official image sets in its final stage (apache/airflow Dockerfile, `main` stage).
BASE_CHANGES = (
    "ENV PATH=/home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV VIRTUAL_ENV=/home/airflow/.local",
    "ENV AIRFLOW_HOME=/opt/airflow",
    "ENV AIRFLOW_UID=50000",
    "ENV AIRFLOW_USER_HOME_DIR=/home/airflow",
    "ENV AIRFLOW__CORE__LOAD_EXAMPLES=false",
    "ENV LANG=C.UTF-8",
    "ENV DEBIAN_FRONTEND=noninteractive",
    "WORKDIR /opt/airflow",
    f"USER {AIRFLOW_UID}",
)
CHROOT_STEPS = (
    ["useradd", "--uid", str(AIRFLOW_UID), "--gid", "0", "--home-dir", "/home/airflow", "--create-home",
     "--shell", "/bin/bash", "airflow"],
    ["python3", "-m", "venv", "/home/airflow/.local"],
    ["mkdir", "-p", "/opt/airflow/dags", "/opt/airflow/logs"],
    ["chown", "-R", "airflow:0", "/home/airflow", "/opt/airflow"],
    ["chmod", "-R", "g+rw", "/home/airflow", "/opt/airflow"],
)  # fmt: skip


def recipe_key() -> str:
    recipe = json.dumps([images.rootfs_key(), BASE_CHANGES, CHROOT_STEPS])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def docker_cli() -> str | None:
    """Debian's docker.io client first: it builds with BuildKit without the buildx plugin."""
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker")


def missing_prerequisites() -> str | None:
    """Why the stand-in build cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the stand-in build needs root (private dockerd, debootstrap, chroot); run as root or in CI"
    missing = [tool for tool in ("dockerd", "debootstrap") if shutil.which(tool) is None]
    if docker_cli() is None:
        missing.append("docker")
    if missing:
        return (
            f"missing {', '.join(missing)}: install Debian's docker.io and debootstrap "
            "(scripts/system_deps.sh does it as root)"
        )
    return None


def unset_ca_overrides(env: dict[str, str]) -> dict[str, str]:
    # This machine's REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are for outbound HTTPS, not for the daemon socket.
    return {k: v for k, v in env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}


@dataclass
class Daemon:
    """A dockerd of our own: nothing else on the machine uses its socket, data or containerd namespace."""

    state: Path = STATE
    # The dockerd this session started: its child, so stop() must reap it (an unreaped daemon stays a zombie that
    # still answers kill(pid, 0), and the stop would wait out its whole grace).
    process: subprocess.Popen | None = None

    @property
    def runtime(self) -> Path:
        """Sockets live here: under .state/image, unless the checkout's path is so long that containerd's
        socket would pass the 108-byte limit of a unix socket path; then under /run."""
        if len(str(self.state / "exec/containerd/containerd.sock.ttrpc")) < 100:
            return self.state
        return Path("/run") / f"tripclick-image-{hashlib.sha256(str(self.state).encode()).hexdigest()[:8]}"

    @property
    def socket(self) -> Path:
        return self.runtime / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.state / "dockerd.pid"

    @property
    def env(self) -> dict[str, str]:
        env = unset_ca_overrides(dict(os.environ))
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        env["DOCKER_BUILDKIT"] = "1"
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker_cli(), *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def alive(self) -> bool:
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self) -> None:
        if self.alive():
            return
        self.state.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(parents=True, exist_ok=True)
        # A daemon that died uncleanly leaves its pid file and socket; dockerd refuses to start over them.
        for stale in (self.pidfile, self.socket):
            stale.unlink(missing_ok=True)
        cmd = [
            "dockerd",
            "--data-root", str(self.state / "docker"),
            "--exec-root", str(self.runtime / "exec"),
            "--pidfile", str(self.pidfile),
            "--host", f"unix://{self.socket}",
            # No bridge and no iptables rules: this daemon must not touch the host's network set-up.
            # Builds use --network host instead (pip and apt need PyPI and Debian).
            "--bridge=none", "--iptables=false", "--ip6tables=false",
            # Its own containerd namespaces, so it cannot clash with any other dockerd on the machine.
            "--containerd-namespace", "tripclick-image",
            "--containerd-plugins-namespace", "tripclick-image-plugins",
        ]  # fmt: skip
        log = (self.state / "dockerd.log").open("ab")
        process = subprocess.Popen(
            cmd, stdout=log, stderr=log, start_new_session=True, env=unset_ca_overrides(dict(os.environ))
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.alive():
                self.process = process
                return
            time.sleep(0.5)
        raise RuntimeError(f"private dockerd did not answer on {self.socket} within 60 s; see {self.state}/dockerd.log")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def base_tarball(state: Path = STATE) -> tuple[Path, float]:
    """The stand-in root file system as a tarball, from cache if the recipe has not changed; the seconds it took."""
    started = time.monotonic()
    tarball = state / f"standin-{SUITE}-{recipe_key()}.tar"
    if tarball.exists():
        return tarball, 0.0
    root = state / "standin-root"
    images.unpack(images.rootfs_tarball(), root)
    for step in CHROOT_STEPS:
        subprocess.run(["chroot", str(root), *step], check=True, capture_output=True)
    # The Dockerfile runs apt-get update itself, as it must on the official base.
    for cache in (root / "var/lib/apt/lists", root / "var/cache/apt/archives"):
        for item in cache.glob("*"):
            if item.is_file():
                item.unlink()
    for stale in state.glob(f"standin-{SUITE}-*.tar"):
        stale.unlink()
    images.pack(root, tarball)
    shutil.rmtree(root)
    return tarball, time.monotonic() - started


def host_ca_bundle() -> Path:
    """The CA bundle pip trusts on this machine: pip's own setting (PIP_CERT, `pip config` global.cert), else
    OpenSSL's default file (Debian: /etc/ssl/certs/ca-certificates.crt), else certifi's."""
    configured = os.environ.get("PIP_CERT")
    if not configured:
        found = subprocess.run(
            [str(REPO / ".venv/bin/python"), "-m", "pip", "config", "get", "global.cert"],
            capture_output=True,
            text=True,
            check=False,
        )
        configured = found.stdout.strip() if found.returncode == 0 else ""
    candidates = [configured, ssl.get_default_verify_paths().cafile or ""]
    try:
        import certifi

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("no CA bundle on this machine: set PIP_CERT or install Debian's ca-certificates")


@dataclass(frozen=True)
class PipCa:
    """A throwaway CA, passed to the build as the pip_ca secret the way a user behind a TLS-intercepting
    proxy passes theirs: appended to the CA bundle pip already trusts (pip's PIP_CERT replaces the trust
    store, so the CA alone would make PyPI untrusted). Its name and a line of its PEM body are searched for
    in the built image."""

    bundle: Path
    common_name: str
    pem_line: str


def throwaway_pip_ca(state: Path = STATE) -> PipCa:
    """Made once and kept under .state/image/pip-ca: BuildKit leaves secrets out of its cache keys, so a cached
    pip layer was built with this same CA and the search in the image still means something."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = state / "pip-ca"
    cert = folder / "throwaway-ca.pem"
    if not cert.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tripclick throwaway pip CA {os.urandom(8).hex()}")])
        key = ec.generate_private_key(ec.SECP256R1())
        # Fixed dates: nothing is ever verified against this CA, and the test must not depend on the clock.
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        partial = cert.with_suffix(".partial")
        partial.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        partial.rename(cert)
    pem = cert.read_text()
    common_name = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    # A full 64-character line of the base64 body: unique to this certificate, found in any PEM copy of it.
    body = [line for line in pem.splitlines() if len(line) == 64 and not line.startswith("-")]
    pem_line = body[len(body) // 2]
    bundle = folder / "bundle.pem"
    bundle.write_text(host_ca_bundle().read_text().rstrip("\n") + "\n" + pem)
    return PipCa(bundle=bundle, common_name=str(common_name[0].value), pem_line=pem_line)


def saved_image_contains(daemon: Daemon, ref: str, needles: list[bytes]) -> set[bytes]:
    """Which of `needles` occur anywhere in `docker save ref`: every layer (files a later layer deletes
    included), the image config (env, labels, history) and the manifests."""
    import tarfile
    import zlib

    overlap = max(map(len, needles)) - 1
    found: set[bytes] = set()
    save = subprocess.Popen([docker_cli(), "save", ref], env=daemon.env, stdout=subprocess.PIPE)
    with tarfile.open(fileobj=save.stdout, mode="r|") as outer:
        for member in outer:
            if not member.isfile():
                continue
            blob = outer.extractfile(member)
            chunk = blob.read(1 << 20)
            if chunk.startswith(b"\x28\xb5\x2f\xfd"):
                raise AssertionError(f"{member.name}: a zstd-compressed layer, which this search cannot read")
            inflate = zlib.decompressobj(zlib.MAX_WBITS | 16) if chunk.startswith(b"\x1f\x8b") else None
            tail = b""
            while chunk:
                window = tail + (inflate.decompress(chunk) if inflate else chunk)
                found.update(needle for needle in needles if needle in window)
                tail = window[-overlap:]
                chunk = blob.read(1 << 20)
    if save.wait() != 0:
        raise AssertionError(f"docker save {ref} failed")
    return found


def airflow_pin() -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.startswith("apache-airflow=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("requirements.txt has no apache-airflow== pin")


def make_image(daemon: Daemon, ref: str, pip_ca: Path, base: str = BASE_TAG) -> subprocess.CompletedProcess[str]:
    """`make image` itself, pointed at the private daemon and the stand-in base, building `ref`.

    `ref` comes from `make image-ref` before the build and is passed back in, because other commits can
    move HEAD during a build of several minutes.

    --network host: the private daemon has no bridge, and pip and apt need PyPI and Debian.
    The pip_ca secret is always given (a CA bundle, see PipCa), so the build takes the path of a user
    behind a TLS-intercepting proxy, and what it leaves in the image can be checked.
    """
    flags = ["--network host", "--progress plain", f"--secret id=pip_ca,src={pip_ca}"]
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "image",
            f"IMAGE_DOCKER={docker_cli()}",
            f"AIRFLOW_BASE_IMAGE={base}",
            f"AIRFLOW_IMAGE={ref}",
            f"IMAGE_REVISION={ref.rsplit(':', 1)[1].removeprefix(airflow_pin() + '-')}",
            f"IMAGE_BUILD_FLAGS={' '.join(flags)}",
        ],
        cwd=REPO,
        env=daemon.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )


def make_print(variable: str) -> str:
    """A value as the Makefile computes it (`make image-ref` and friends)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", variable], cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
