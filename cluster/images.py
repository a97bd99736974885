"""The cluster's images, all built here (no registry can be reached): pause, CoreDNS and the smoke test's.

Each is a `FROM scratch` image around one static binary, built by Docker and saved as a tarball under
.state/cluster/images, named after the hash of what went in; cluster-up imports the tarballs into containerd's
k8s.io namespace. Docker runs only while an image is built: a daemon of our own (no iptables, no bridge, no
IP forwarding, its own data and exec roots), started and stopped here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

from . import proc, settings


def pause_source() -> Path:
    k8s = settings.versions()["KUBERNETES"]
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    src = Path(gomodcache) / f"k8s.io/kubernetes@{k8s}" / "build/pause/linux/pause.c"
    if not src.exists():
        subprocess.run(
            ["go", "mod", "download", f"k8s.io/kubernetes@{k8s}"], check=True, cwd=settings.GOMOD / "kubernetes"
        )
    return src


def _dockerfile(binary: str, args: list[str], user: str) -> str:
    entry = ", ".join(f'"{a}"' for a in [f"/{binary}", *args])
    return f"FROM scratch\nCOPY {binary} /{binary}\nUSER {user}\nENTRYPOINT [{entry}]\n"


def _recipes() -> dict[str, tuple[Path, str]]:
    """image name -> (the binary it holds, its Dockerfile)."""
    return {
        "pause": (settings.state("images", "pause"), _dockerfile("pause", [], "65535:65535")),
        "coredns": (settings.BIN / "coredns", _dockerfile("coredns", [], "0:0")),
        "smoke": (settings.BIN / "smoke", _dockerfile("smoke", [], "65534:65534")),
    }


def _build_pause() -> Path:
    out = settings.state("images", "pause")
    out.parent.mkdir(parents=True, exist_ok=True)
    version = settings.versions()["PAUSE"]
    # The flags of build/pause/Makefile.
    subprocess.run(
        [
            "gcc",
            "-Os",
            "-Wall",
            "-Werror",
            "-static",
            f"-DVERSION=v{version}-tripclick",
            "-o",
            str(out),
            str(pause_source()),
        ],
        check=True,
    )
    return out


def tarball(name: str) -> Path:
    binary, dockerfile = _recipes()[name]
    h = hashlib.sha256(settings.image(name).encode() + dockerfile.encode() + binary.read_bytes()).hexdigest()[:16]
    return settings.state("images", f"{name}-{h}.tar")


def docker_root() -> Path:
    return settings.state("docker")


@contextlib.contextmanager
def docker_daemon() -> Generator[dict[str, str]]:
    """A dockerd of our own for the length of a build: the client's environment while it runs."""
    root = docker_root()
    for d in ("data", "exec"):
        (root / d).mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    config = root / "daemon.json"
    config.write_text("{}\n")  # not /etc/docker/daemon.json
    proc.start(
        "dockerd",
        [
            shutil.which("dockerd") or "dockerd",
            f"--config-file={config}",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'exec'}",
            f"--pidfile={root / 'dockerd.pid'}",
            f"--host=unix://{sock}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
        ],
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    try:
        proc.wait_for(
            "dockerd",
            lambda: subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0,
            60,
            "dockerd",
        )
        yield env
    finally:
        proc.stop("dockerd", timeout=30)


def ensure_tarballs() -> dict[str, Path]:
    """The saved image of each recipe, built (with Docker) only when its inputs changed."""
    _build_pause()
    wanted = {name: tarball(name) for name in _recipes()}
    missing = {name: path for name, path in wanted.items() if not path.exists()}
    if missing:
        start = time.monotonic()
        with docker_daemon() as env:
            for name, path in missing.items():
                binary, dockerfile = _recipes()[name]
                with tempfile.TemporaryDirectory() as ctx:
                    shutil.copy2(binary, Path(ctx) / binary.name)
                    (Path(ctx) / "Dockerfile").write_text(dockerfile)
                    tag = settings.image(name)
                    # The legacy builder suffices for COPY into scratch; its output shows on failure only.
                    built = subprocess.run(["docker", "build", "-t", tag, ctx], env=env, capture_output=True, text=True)
                    if built.returncode != 0:
                        raise proc.ClusterError(f"docker build of {tag} failed:\n{built.stdout}{built.stderr}")
                    tmp = path.with_suffix(".tmp")
                    subprocess.run(["docker", "save", "-o", str(tmp), tag], env=env, check=True)
                    tmp.replace(path)
                for old in path.parent.glob(f"{name}-*.tar"):
                    if old != path:
                        old.unlink()
        print(f"  built images {', '.join(missing)} in {time.monotonic() - start:.0f} s", flush=True)
    return wanted


def import_all(tarballs: dict[str, Path], ctr: list[str]) -> None:
    """Import into containerd's k8s.io namespace, where the kubelet looks."""
    for path in tarballs.values():
        subprocess.run([*ctr, "-n", "k8s.io", "images", "import", str(path)], check=True, capture_output=True)
