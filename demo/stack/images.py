"""The producer image, built offline: a Debian base from debootstrap + `docker import`, then
`docker build FROM` it. Built once on server0, saved to a tarball under .state, loaded into server1.
Rebuilt only when the producer's sources change (content hash in an image label).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from . import config, settings
from .proc import StackError

BASE_IMAGE = "tripclick-demo-base:bookworm"
SUITE = "bookworm"
# One Debian root for every image built here without a registry: the producer's base below and the Airflow
# image's stand-in base (tests/image/standin.py). Each unpacks a copy and trims or completes it, so the minute
# debootstrap takes is spent once per machine. python3-kafka lets the producer's Kafka transport run unchanged
# where a broker exists; python3-venv and ca-certificates are what the stand-in needs of the official image.
ROOTFS_PACKAGES = ("python3", "python3-kafka", "python3-venv", "ca-certificates")
ROOTFS_DIR = config.REPO / ".state" / "debootstrap"
PRODUCER_DIR = config.REPO / "workloads" / "producer"


def producer_hash() -> str:
    h = hashlib.sha256(",".join(ROOTFS_PACKAGES).encode())
    for p in sorted(PRODUCER_DIR.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PRODUCER_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def rootfs_key() -> str:
    return hashlib.sha256(json.dumps([SUITE, ROOTFS_PACKAGES]).encode()).hexdigest()[:12]


def rootfs_tarball() -> Path:
    """`debootstrap --variant=minbase` of SUITE with ROOTFS_PACKAGES, once (about a minute), kept as a tarball."""
    out = ROOTFS_DIR / f"{SUITE}-minbase-{rootfs_key()}.tar"
    if out.exists():
        return out
    if not shutil.which("debootstrap"):
        raise StackError("debootstrap not found: run scripts/system_deps.sh")
    root = ROOTFS_DIR / "root"
    if root.exists():
        shutil.rmtree(root)
    ROOTFS_DIR.mkdir(parents=True, exist_ok=True)
    log = ROOTFS_DIR / "debootstrap.log"
    packages = ",".join(ROOTFS_PACKAGES)
    print(f"  Debian root: debootstrap --variant=minbase --include={packages} {SUITE} (about a minute)", flush=True)
    t0 = time.monotonic()
    with open(log, "wb") as f:
        r = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", SUITE, str(root)],
            stdout=f,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=900,
        )
    if r.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise StackError(f"debootstrap failed (exit {r.returncode}); see {log}:\n{tail}")
    for stale in ROOTFS_DIR.glob(f"{SUITE}-minbase-*.tar"):
        stale.unlink()
    pack(root, out)
    shutil.rmtree(root)
    print(f"  Debian root: tarball ready ({time.monotonic() - t0:.0f}s)", flush=True)
    return out


def unpack(tarball: Path, root: Path) -> None:
    """A fresh copy of a root file system tarball in `root`."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True)


def pack(root: Path, out: Path) -> None:
    tmp = out.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tmp), "."], check=True)
    tmp.replace(out)


def base_tarball() -> Path:
    """The producer's base: the shared Debian root without what a producer never needs, under .state/demo/images."""
    source = rootfs_tarball()
    out = config.state("images", f"base-{source.stem}.tar")
    if out.exists():
        return out
    root = config.state("images", "rootfs")
    unpack(source, root)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        p = root / junk
        if p.exists():
            shutil.rmtree(p)
            p.mkdir()
    for stale in out.parent.glob("base-*.tar"):
        stale.unlink()
    pack(root, out)
    shutil.rmtree(root)
    return out


def _has_image(client, ref: str, digest: str | None = None) -> bool:
    import docker

    try:
        img = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return digest is None or (img.labels or {}).get("org.tripclick.source-hash") == digest


def ensure(daemons) -> None:
    """Make `tripclick-producer:<tag>` (current sources) present on every daemon."""
    ref = settings.producer_ref()
    digest = producer_hash()
    clients = [(d, d.client(timeout=300)) for d in daemons]
    try:
        missing = [(d, c) for d, c in clients if not _has_image(c, ref, digest)]
        if not missing:
            print(f"  image {ref}: present on {', '.join(d.server for d, _ in clients)}")
            return
        saved = config.state("images", f"producer-{digest}.tar")
        if not saved.exists():
            _build(clients[0][1], ref, digest, saved)
        data = saved.read_bytes()
        for d, c in missing:
            if _has_image(c, ref, digest):
                continue
            c.images.load(data)
            print(f"  image {ref}: loaded into {d.server}")
    finally:
        for _, c in clients:
            c.close()


def _build(client, ref: str, digest: str, saved: Path) -> None:
    t0 = time.monotonic()
    if not _has_image(client, BASE_IMAGE):
        tarball = base_tarball()
        # `docker import` through the API. From a file (sent with Content-Length): the daemon drops a
        # chunked upload of this size over TLS.
        client.api.import_image_from_file(str(tarball), repository=BASE_IMAGE.split(":")[0], tag=SUITE)
        if not _has_image(client, BASE_IMAGE):
            raise StackError(f"docker import of {tarball} did not produce {BASE_IMAGE}")
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        for p in sorted(PRODUCER_DIR.rglob("*")):
            if "__pycache__" in p.parts:
                continue
            tar.add(p, arcname=str(p.relative_to(PRODUCER_DIR)), recursive=False)
    ctx.seek(0)
    try:
        client.images.build(
            fileobj=ctx,
            custom_context=True,
            tag=ref,
            rm=True,
            forcerm=True,
            network_mode="none",
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            labels={"org.tripclick.source-hash": digest},
        )
    except Exception as exc:  # BuildError carries the build log
        log = "".join(str(x.get("stream", "")) for x in getattr(exc, "build_log", []) or [])
        raise StackError(f"docker build of {ref} failed: {exc}\n{log[-3000:]}") from exc
    saved.parent.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for chunk in client.images.get(ref).save(named=True):
            f.write(chunk)
    tmp.replace(saved)
    for old in saved.parent.glob("producer-*.tar"):
        if old != saved:
            old.unlink()
    print(f"  image {ref}: built on server0 ({time.monotonic() - t0:.0f}s)")
