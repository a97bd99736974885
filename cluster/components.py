"""The cluster's host processes in start order: each one's command line and the check that says it is up."""

from __future__ import annotations

import dataclasses
import ssl
import subprocess
import urllib.request
from collections.abc import Callable

from . import configs, pki, settings


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    command: Callable[[], list[str]]
    ready: Callable[[], bool]
    timeout: float = 60.0


def _bin(name: str) -> str:
    return str(settings.BIN / name)


def _https_ok(url: str, cert: str, *, expect: bytes = b"ok") -> bool:
    ctx = ssl.create_default_context(cafile=str(pki.path("ca")))
    ctx.load_cert_chain(str(pki.path(cert)), str(pki.path(cert, "key")))
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:  # noqa: S310 - our own https endpoint
        return r.status == 200 and r.read().strip() == expect


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - loopback health endpoint
        return r.status == 200


def kubectl(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_bin("kubectl"), f"--kubeconfig={pki.kubeconfig('admin')}", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def ctr() -> list[str]:
    return [_bin("ctr"), f"--address={configs.containerd_socket()}"]


def _etcd() -> list[str]:
    client = f"https://127.0.0.1:{settings.PORTS['etcd-client']}"
    peer = f"http://127.0.0.1:{settings.PORTS['etcd-peer']}"
    return [
        _bin("etcd"),
        "--name=tripclick",
        f"--data-dir={settings.state('etcd')}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=tripclick={peer}",
        f"--cert-file={pki.path('etcd-server')}",
        f"--key-file={pki.path('etcd-server', 'key')}",
        f"--trusted-ca-file={pki.path('ca')}",
        "--client-cert-auth",
        "--log-level=warn",
    ]


def _etcd_ready() -> bool:
    url = f"https://127.0.0.1:{settings.PORTS['etcd-client']}/health"
    ctx = ssl.create_default_context(cafile=str(pki.path("ca")))
    ctx.load_cert_chain(str(pki.path("apiserver-etcd-client")), str(pki.path("apiserver-etcd-client", "key")))
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:  # noqa: S310
        return b'"health":"true"' in r.read()


def _containerd() -> list[str]:
    return [_bin("containerd"), f"--config={configs.etc('containerd.toml')}"]


def _containerd_ready() -> bool:
    return subprocess.run([*ctr(), "version"], capture_output=True, timeout=5).returncode == 0


def _apiserver() -> list[str]:
    return [
        _bin("kube-apiserver"),
        f"--etcd-servers=https://127.0.0.1:{settings.PORTS['etcd-client']}",
        f"--etcd-cafile={pki.path('ca')}",
        f"--etcd-certfile={pki.path('apiserver-etcd-client')}",
        f"--etcd-keyfile={pki.path('apiserver-etcd-client', 'key')}",
        f"--bind-address={settings.NODE_IP}",
        f"--advertise-address={settings.NODE_IP}",
        f"--secure-port={settings.PORTS['apiserver']}",
        f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
        f"--tls-cert-file={pki.path('apiserver')}",
        f"--tls-private-key-file={pki.path('apiserver', 'key')}",
        f"--client-ca-file={pki.path('ca')}",
        f"--kubelet-client-certificate={pki.path('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.path('apiserver-kubelet-client', 'key')}",
        f"--kubelet-certificate-authority={pki.path('ca')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer=https://kubernetes.default.svc.{settings.CLUSTER_DOMAIN}",
        f"--service-account-key-file={pki.path('sa', 'pub')}",
        f"--service-account-signing-key-file={pki.path('sa', 'key')}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _apiserver_ready() -> bool:
    return _https_ok(f"{pki.server_url()}/readyz", "admin")


def _control(binary: str, ident: str, port_key: str, extra: list[str]) -> Callable[[], list[str]]:
    def command() -> list[str]:
        kc = pki.kubeconfig(ident)
        return [
            _bin(binary),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={settings.PORTS[port_key]}",
            "--leader-elect=false",
            "--profiling=false",
            *extra,
        ]

    return command


def _healthz(port_key: str) -> Callable[[], bool]:
    def check() -> bool:
        ctx = ssl._create_unverified_context()  # noqa: S323 - self-signed serving cert of a loopback health port
        with urllib.request.urlopen(
            f"https://127.0.0.1:{settings.PORTS[port_key]}/healthz", context=ctx, timeout=3
        ) as r:  # noqa: S310
            return r.status == 200

    return check


def _kubelet() -> list[str]:
    return [
        _bin("kubelet"),
        f"--config={configs.etc('kubelet.yaml')}",
        f"--kubeconfig={pki.kubeconfig('kubelet')}",
        f"--root-dir={settings.state('kubelet')}",
        f"--cert-dir={settings.state('kubelet', 'pki')}",
        f"--node-ip={settings.NODE_IP}",
        f"--hostname-override={settings.NODE_NAME}",
        "--v=1",
    ]


def _kube_proxy() -> list[str]:
    return [_bin("kube-proxy"), f"--config={configs.etc('kube-proxy.yaml')}"]


def _kube_router() -> list[str]:
    return [
        _bin("kube-router"),
        f"--kubeconfig={pki.kubeconfig('kube-router')}",
        # Network policies only; routing and the service proxy stay off (kube-proxy serves Services).
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv6=false",
        f"--hostname-override={settings.NODE_NAME}",
        f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
        # Its health and metrics servers can only listen on every interface: off. It counts as up once its
        # policy chain is in place.
        "--health-port=0",
        "--metrics-port=0",
    ]


COMPONENTS = [
    Component("etcd", _etcd, _etcd_ready),
    Component("containerd", _containerd, _containerd_ready),
    Component("kube-apiserver", _apiserver, _apiserver_ready, 120),
    Component(
        "kube-controller-manager",
        _control(
            "kube-controller-manager",
            "controller-manager",
            "controller-manager",
            [
                f"--cluster-cidr={settings.POD_CIDR}",
                "--allocate-node-cidrs=true",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
                f"--cluster-signing-cert-file={pki.path('ca')}",
                f"--cluster-signing-key-file={pki.path('ca', 'key')}",
                f"--root-ca-file={pki.path('ca')}",
                f"--service-account-private-key-file={pki.path('sa', 'key')}",
                "--use-service-account-credentials=true",
            ],
        ),
        _healthz("controller-manager"),
    ),
    Component("kube-scheduler", _control("kube-scheduler", "scheduler", "scheduler", []), _healthz("scheduler")),
    Component(
        "kubelet",
        _kubelet,
        lambda: _http_ok(f"http://127.0.0.1:{settings.PORTS['kubelet-healthz']}/healthz"),
        120,
    ),
    Component(
        "kube-proxy", _kube_proxy, lambda: _http_ok(f"http://127.0.0.1:{settings.PORTS['kube-proxy-healthz']}/healthz")
    ),
    Component(
        "kube-router",
        _kube_router,
        lambda: subprocess.run(["iptables", "-n", "-L", "KUBE-ROUTER-FORWARD"], capture_output=True).returncode == 0,
    ),
]
