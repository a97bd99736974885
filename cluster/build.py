"""Build the cluster's programs from the pinned wrapper modules in cluster/gomod/ into .state/cluster/bin/.

One binary at a time (they peak at about 3 GB and 2 cores each). A binary is rebuilt only when its inputs
change: the version, the wrapper's go.mod, go.sum and Go files, the Go toolchain and the build flags; their hash
is kept beside the binary. Go's own caches stay in their default places, so a rebuild after a version bump
recompiles only what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import time

from . import settings


class BuildError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Binary:
    name: str
    module: str  # folder under cluster/gomod/
    package: str
    version: str  # key in versions.env
    ldflags: tuple[str, ...] = ()
    cgo: bool = False
    tags: str = ""


def _kubernetes_ldflags(v: str) -> tuple[str, ...]:
    # Without these the components report v0.0.0, and helm's kubeVersion checks and kubectl's skew warning fail.
    major, minor = v.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={v}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


def binaries() -> list[Binary]:
    v = settings.versions()
    k8s = _kubernetes_ldflags(v["KUBERNETES"])
    kube = [
        Binary(n, "kubernetes", f"k8s.io/kubernetes/cmd/{n}", "KUBERNETES", k8s)
        for n in ("kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl")
    ]
    containerd = tuple(
        f"-X github.com/containerd/containerd/v2/version.{k}={val}"
        for k, val in (("Version", v["CONTAINERD"]), ("Package", "github.com/containerd/containerd/v2"))
    )
    return [
        *kube,
        Binary("etcd", "etcd", "go.etcd.io/etcd/server/v3", "ETCD"),
        Binary("etcdctl", "etcd", "go.etcd.io/etcd/etcdctl/v3", "ETCD"),
        Binary(
            "containerd", "containerd", "github.com/containerd/containerd/v2/cmd/containerd", "CONTAINERD", containerd
        ),
        Binary("ctr", "containerd", "github.com/containerd/containerd/v2/cmd/ctr", "CONTAINERD", containerd),
        Binary(
            "containerd-shim-runc-v2",
            "containerd",
            "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
            "CONTAINERD",
            containerd,
        ),
        # runc needs cgo for its nsenter C code and libseccomp for the default seccomp profile.
        Binary("runc", "runc", "github.com/opencontainers/runc", "RUNC", cgo=True, tags="seccomp"),
        Binary(
            "kube-router",
            "kube-router",
            "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
            "KUBE_ROUTER",
            (f"-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={v['KUBE_ROUTER']}",),
        ),
        Binary(
            "coredns",
            "coredns",
            "tripclick.local/cluster/coredns",
            "COREDNS",
            (f"-X github.com/coredns/coredns/coremain.GitCommit={v['COREDNS']}",),
        ),
        Binary(
            "helm",
            "helm",
            "helm.sh/helm/v4/cmd/helm",
            "HELM",
            (f"-X helm.sh/helm/v4/internal/version.version={v['HELM']}",),
        ),
        # The smoke test's server and client: our own code, stdlib only.
        Binary("smoke", "smoke", "tripclick.local/cluster/smoke", "KUBERNETES"),
    ]


# The module each wrapper pins, checked against versions.env so that the two cannot drift apart.
PINNED_MODULE = {
    "KUBERNETES": "k8s.io/kubernetes",
    "ETCD": "go.etcd.io/etcd/server/v3",
    "CONTAINERD": "github.com/containerd/containerd/v2",
    "RUNC": "github.com/opencontainers/runc",
    "KUBE_ROUTER": "github.com/cloudnativelabs/kube-router/v2",
    "COREDNS": "github.com/coredns/coredns",
    "HELM": "helm.sh/helm/v4",
}


def required_version(module_dir: str, module: str) -> str | None:
    text = (settings.GOMOD / module_dir / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    return m.group(1) if m else None


def check_pins() -> list[str]:
    """One line per wrapper module whose go.mod disagrees with versions.env."""
    v = settings.versions()
    problems = []
    for b in binaries():
        module = PINNED_MODULE.get(b.version)
        if module is None or b.module == "smoke":
            continue
        got = required_version(b.module, module)
        if got != v[b.version]:
            problems.append(
                f"cluster/gomod/{b.module}/go.mod requires {module} {got}, versions.env says {v[b.version]}"
            )
    return sorted(set(problems))


def _go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def _flags(b: Binary) -> list[str]:
    flags = ["-trimpath", "-ldflags", " ".join(("-s", "-w", *b.ldflags))]
    if b.tags:
        flags += ["-tags", b.tags]
    return flags


def inputs_hash(b: Binary, go_version: str) -> str:
    h = hashlib.sha256()
    h.update(f"{b}\n{go_version}\n{settings.versions()[b.version]}\n{_flags(b)}\n".encode())
    folder = settings.GOMOD / b.module
    for path in sorted(folder.iterdir()):
        if path.suffix in (".go", ".mod", ".sum"):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def build(names: list[str] | None = None, *, force: bool = False) -> dict[str, float]:
    """Build the named binaries (all by default); returns the seconds each build took (0 for an up-to-date one)."""
    problems = check_pins()
    if problems:
        raise BuildError("versions disagree:\n  " + "\n  ".join(problems))
    settings.BIN.mkdir(parents=True, exist_ok=True)
    stamps = settings.BIN / ".inputs"
    stamps.mkdir(exist_ok=True)
    go_version = _go_version()
    selected = [b for b in binaries() if names is None or b.name in names]
    unknown = set(names or ()) - {b.name for b in selected}
    if unknown:
        raise BuildError(f"no such binary: {', '.join(sorted(unknown))}")
    took: dict[str, float] = {}
    for b in selected:
        out = settings.BIN / b.name
        digest = inputs_hash(b, go_version)
        stamp = stamps / b.name
        if not force and out.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            took[b.name] = 0.0
            continue
        env = {**os.environ, "CGO_ENABLED": "1" if b.cgo else "0", "GOFLAGS": "-buildvcs=false"}
        print(f"  building {b.name} ({settings.versions()[b.version]})", flush=True)
        start = time.monotonic()
        tmp = out.with_name(f".{b.name}.tmp")
        r = subprocess.run(
            ["go", "build", *_flags(b), "-o", str(tmp), b.package], cwd=settings.GOMOD / b.module, env=env
        )
        if r.returncode != 0:
            raise BuildError(f"go build of {b.name} failed (exit {r.returncode})")
        tmp.replace(out)
        stamp.write_text(digest + "\n")
        took[b.name] = time.monotonic() - start
        print(f"  built {b.name} in {took[b.name]:.0f} s", flush=True)
    return took


def main(argv: list[str]) -> int:
    force = "--force" in argv
    names = [a for a in argv if not a.startswith("-")] or None
    try:
        took = build(names, force=force)
    except BuildError as e:
        print(f"cluster build: {e}", file=sys.stderr)
        return 1
    built = {n: t for n, t in took.items() if t}
    if built:
        print(f"built {len(built)} binaries in {sum(built.values()):.0f} s into {settings.BIN}")
    else:
        print(f"all {len(took)} binaries up to date in {settings.BIN}")
    return 0
