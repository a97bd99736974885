"""The cluster's certificates and kubeconfigs: one CA signs every serving and client certificate; the service
account tokens have their own key pair. Made once per cluster-up under .state/cluster/pki."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import settings

VALID_DAYS = 365


@dataclasses.dataclass(frozen=True)
class Identity:
    name: str  # file stem under pki/
    cn: str
    org: str | None = None
    server: bool = False
    client: bool = True
    hosts: tuple[str, ...] = ()


def identities() -> list[Identity]:
    node = settings.NODE_NAME
    api_hosts = (
        settings.NODE_IP,
        settings.API_SERVICE_IP,
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{settings.CLUSTER_DOMAIN}",
    )
    return [
        Identity("etcd-server", "etcd", server=True, client=False, hosts=("127.0.0.1", "localhost")),
        Identity("apiserver-etcd-client", "kube-apiserver-etcd-client"),
        Identity("apiserver", "kube-apiserver", server=True, client=False, hosts=api_hosts),
        # The apiserver calls the kubelet (logs, exec, port-forward) with this one; system:masters may do so.
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Identity("admin", "tripclick-admin", "system:masters"),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kubelet", f"system:node:{node}", "system:nodes"),
        Identity("kubelet-server", node, server=True, client=False, hosts=(settings.NODE_IP, node, "127.0.0.1")),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("kube-router", "tripclick:kube-router"),
    ]


# Which kubeconfig each program gets, and whose certificate it holds.
KUBECONFIGS = {
    "admin": "admin",
    "controller-manager": "controller-manager",
    "scheduler": "scheduler",
    "kubelet": "kubelet",
    "kube-proxy": "kube-proxy",
    "kube-router": "kube-router",
}


def pki_dir() -> Path:
    return settings.state("pki")


def path(stem: str, suffix: str = "crt") -> Path:
    return pki_dir() / f"{stem}.{suffix}"


def _write_key(p: Path, key) -> None:
    p.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    p.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _issue(ident: Identity, ca_key, ca_cert: x509.Certificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if ident.server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if ident.client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(ident.cn, ident.org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if ident.hosts:
        builder = builder.add_extension(_san(ident.hosts), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(path(ident.name, "key"), key)
    path(ident.name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure() -> None:
    """Make the CA, every certificate, the service-account key pair and the kubeconfigs, if not there yet."""
    d = pki_dir()
    d.mkdir(parents=True, exist_ok=True)
    if not path("ca").exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("tripclick-cluster-ca"))
            .issuer_name(_name("tripclick-cluster-ca"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(path("ca", "key"), ca_key)
        path("ca").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca_key = serialization.load_pem_private_key(path("ca", "key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(path("ca").read_bytes())
    for ident in identities():
        if not path(ident.name).exists():
            _issue(ident, ca_key, ca_cert)
    if not path("sa", "key").exists():
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(path("sa", "key"), sa)
        path("sa", "pub").write_bytes(
            sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    for name, ident in KUBECONFIGS.items():
        kubeconfig(name).write_text(yaml.safe_dump(_kubeconfig(ident), sort_keys=False))
        kubeconfig(name).chmod(0o600)


def server_url() -> str:
    return f"https://{settings.NODE_IP}:{settings.PORTS['apiserver']}"


def kubeconfig(name: str) -> Path:
    return pki_dir() / f"{name}.kubeconfig"


def _kubeconfig(ident: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "tripclick", "cluster": {"server": server_url(), "certificate-authority": str(path("ca"))}}
        ],
        "users": [
            {"name": ident, "user": {"client-certificate": str(path(ident)), "client-key": str(path(ident, "key"))}}
        ],
        "contexts": [{"name": "tripclick", "context": {"cluster": "tripclick", "user": ident}}],
        "current-context": "tripclick",
    }
